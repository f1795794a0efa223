"""The one exception type for mistakes a user can make.

Anything raised as :class:`UserError` is printed by the entry points as a single line
(no traceback) and ends the process with a non-zero exit code. Everything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real


class UserError(ValueError):
    """A bad value supplied by the user: the message names it and what is allowed."""


def choice_error(setting: str, value: object, allowed: Iterable[object]) -> UserError:
    """Build the standard error for a value outside a fixed set of choices."""
    allowed_str = ", ".join(str(a) for a in allowed)
    return UserError(f"{setting}={value!r} is not valid; allowed: {allowed_str}")


def integer(setting: str, value: object, lowest: int, highest: int | None = None,
            why: str = "") -> int:
    """An integer in ``lowest..highest`` (no upper bound if ``highest`` is None), else a
    ``UserError`` that states the range and, in brackets, ``why`` it is so."""
    if (isinstance(value, bool) or not isinstance(value, Integral) or value < lowest
            or (highest is not None and value > highest)):
        allowed = f">= {lowest}" if highest is None else f"{lowest}..{highest}"
        raise UserError(f"{setting}={value!r} is not valid; allowed: an integer {allowed}"
                        + (f" ({why})" if why else ""))
    return int(value)


def number(setting: str, value: object, *, above: float | None = None, at_least: float | None = None,
           below: float | None = None, at_most: float | None = None) -> float:
    """A finite real number within the given bounds, else a ``UserError`` that states them."""
    ok = (not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value)
          and (above is None or value > above) and (at_least is None or value >= at_least)
          and (below is None or value < below) and (at_most is None or value <= at_most))
    if not ok:
        low = f"> {above}" if above is not None else f">= {at_least}" if at_least is not None else ""
        high = f"< {below}" if below is not None else f"<= {at_most}" if at_most is not None else ""
        bounds = " and ".join(b for b in (low, high) if b)
        raise UserError(f"{setting}={value!r} is not valid; allowed: a number {bounds}")
    return float(value)
