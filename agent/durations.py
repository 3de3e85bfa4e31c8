"""Durations as the config writes them: ``30s``, ``10m``, ``26h``, ``7d``, ``1h30m`` (Prometheus style)."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: str | int | float) -> float:
    """Return seconds for ``"1h30m"``-style text (or a bare number of seconds).

    Raises ValueError naming the bad text; the unit set follows Prometheus' duration format.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"duration must not be negative: {value}")
        return float(value)
    text = str(value).strip()
    if text == "0":
        return 0.0
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}: use forms like 30s, 10m, 26h, 7d, 1h30m")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """Inverse of parse_duration for whole seconds, largest units first (``5400`` → ``1h30m``)."""
    seconds = int(round(seconds))
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
