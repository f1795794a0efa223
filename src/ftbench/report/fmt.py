"""Numbers as the report writes them."""

from __future__ import annotations


def si(value: float | None, unit: str = "") -> str:
    """3 significant digits with an SI prefix: 1.23 GFLOP, 45.6 k."""
    if value is None:
        return "n/a"
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".strip()


def num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)
