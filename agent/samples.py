"""The unit every probe returns: one value of one series."""

from __future__ import annotations

from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement: `name` is the full metric name (``caretaker_…``), `labels` sorted (key, value) pairs."""

    name: str
    labels: Labels
    value: float

    def label(self, key: str, default: str = "") -> str:
        return dict(self.labels).get(key, default)


def sample(name: str, value: float, **labels: object) -> Sample:
    """Build a Sample; label values are converted to str and sorted by key."""
    return Sample(name, tuple(sorted((k, str(v)) for k, v in labels.items())), float(value))
