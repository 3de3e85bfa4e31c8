"""Caretaker: monitoring, alerting and maintenance for self-hosted media stacks."""

__version__ = "0.1.0"
