"""An optimum on the edge of its search space may lie beyond it: say so, with the hint to widen it."""

from __future__ import annotations

import math
from collections.abc import Sequence

NEAR = 0.05  # of the range, on its own scale (log for a log range)


def edge_hint(knob: str, low: float, high: float, log: bool, value, *, within: float = NEAR,
              limits: Sequence[float] = ()) -> str | None:
    """A hint when ``value`` lies at or within ``within`` of the range ``low..high`` from a bound,
    else None. ``limits``: bounds the strategy itself cannot pass (every backbone group, the
    last probe epoch): there is nothing to widen, so an optimum there is not flagged."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    low, high = float(low), float(high)
    if high <= low or (log and (value <= 0 or low <= 0)):
        return None
    scaled = math.log if log else float
    share = (scaled(value) - scaled(low)) / (scaled(high) - scaled(low))
    scale_note = " (log scale)" if log else ""
    for side, bound, distance in (("lower", low, share), ("upper", high, 1 - share)):
        if distance <= within and bound not in limits:
            where = f"at its {side} bound" if value == bound else f"within {within:.0%} of its {side} bound"
            return f"{knob}={value:.3g} is {where} {bound:g}{scale_note}; widen strategy.search.{knob}"
    return None
