"""Value checks that end in one clear line: a choice, an integer or a number within bounds.

Each raises :class:`ftbench.run.failures.UserError` naming the setting, the value and what is
allowed. The config is checked with these once, before any heavy work (``ftbench.config``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real

from ftbench.run.failures import UserError


def choice_error(setting: str, value: object, allowed: Iterable[object]) -> UserError:
    """The standard error for a value outside a fixed set of choices."""
    allowed_str = ", ".join(str(a) for a in allowed)
    return UserError(f"{setting}={value!r} is not valid; allowed: {allowed_str}")


def choice(setting: str, value: object, allowed: Iterable[object]) -> object:
    allowed = list(allowed)
    if value not in allowed:
        raise choice_error(setting, value, allowed)
    return value


def integer(setting: str, value: object, lowest: int, highest: int | None = None,
            why: str = "") -> int:
    """An integer in ``lowest..highest`` (no upper bound if ``highest`` is None), else a
    ``UserError`` that states the range and, in brackets, ``why`` it is so."""
    whole = None if isinstance(value, bool) or not isinstance(value, Integral) else int(value)
    if whole is None or whole < lowest or (highest is not None and whole > highest):
        if highest is not None and highest < lowest:
            allowed = "no value"
        else:
            allowed = "an integer " + (f">= {lowest}" if highest is None else f"{lowest}..{highest}")
        raise UserError(f"{setting}={value!r} is not valid; allowed: {allowed}"
                        + (f" ({why})" if why else ""))
    return whole


def number(setting: str, value: object, *, above: float | None = None, at_least: float | None = None,
           below: float | None = None, at_most: float | None = None) -> float:
    """A finite real number within the given bounds, else a ``UserError`` that states them."""
    real = None if isinstance(value, bool) or not isinstance(value, Real) else float(value)
    if real is None or not _within(real, above, at_least, below, at_most):
        low = f"> {above}" if above is not None else f">= {at_least}" if at_least is not None else ""
        high = f"< {below}" if below is not None else f"<= {at_most}" if at_most is not None else ""
        bounds = " and ".join(b for b in (low, high) if b)
        raise UserError(f"{setting}={value!r} is not valid; allowed: a number {bounds}")
    return real


def _within(real: float, above: float | None, at_least: float | None, below: float | None,
            at_most: float | None) -> bool:
    return (math.isfinite(real) and (above is None or real > above) and (at_least is None or real >= at_least)
            and (below is None or real < below) and (at_most is None or real <= at_most))
