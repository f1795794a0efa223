"""Numbers as people read them, in log lines and in the report: one way to write each kind."""

from __future__ import annotations


def si(value: float | None, unit: str = "") -> str:
    """3 significant digits with an SI prefix: 1.23 GFLOP, 45.6 k; ``n/a`` for None."""
    if value is None:
        return "n/a"
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".strip()


def duration(seconds: float) -> str:
    """1:02:03, 4:05 or 0:07: hours only when there are some."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
