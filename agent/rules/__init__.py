"""Alert rules as data: one definition feeds the built-in engine and the exported Prometheus rules."""

from agent.rules.model import Match, Rule, load_rules  # noqa: F401
