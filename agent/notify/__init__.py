"""Notifications: durable outbox, Apprise delivery, routing, grouping, silences, inhibition (DESIGN.md §7).

`Alerting` (agent/notify/alerting.py) wires the rule engine and the notifier into the Runtime and is
where other areas hook in (``rt.alerting``).
"""
