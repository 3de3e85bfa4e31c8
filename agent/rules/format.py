"""Human formatting of rule values and thresholds, shared by notifications, `caretaker check` and exports."""

from __future__ import annotations

from agent.durations import format_duration


def format_value(unit: str, value: float) -> str:
    """ratio → ``83.2%``, seconds → ``1h30m``, bytes → ``1.5 GiB``, count → ``12`` / ``0.25``."""
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "seconds":
        return ("-" if value < 0 else "") + format_duration(abs(value))
    if unit == "bytes":
        size = float(value)
        for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(size) < 1024 or suffix == "TiB":
                return f"{size:.0f} {suffix}" if suffix == "B" else f"{size:.1f} {suffix}"
            size /= 1024
    return f"{value:g}"


def render(template: str, labels: dict[str, str], unit: str, value: float, threshold: float) -> str:
    """Fill ``{label}``, ``{value}`` and ``{threshold}`` placeholders; unknown labels render empty."""
    fields = {**labels, "value": format_value(unit, value), "threshold": format_value(unit, threshold)}

    class _Missing(dict):
        def __missing__(self, key: str) -> str:
            return ""

    return template.format_map(_Missing(fields))
