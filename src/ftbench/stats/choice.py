"""The report's settings (``--margin``, ``--confidence``, ``--resamples`` or ``report.*``),
checked before any file is written: a refused setting changes nothing.

``resamples`` has an upper bound: the bootstrap keeps three float64 arrays of strategies x
resamples (and the verdict more of the same), so 100,000 resamples of 9 strategies take tens of
MB; far more would exhaust memory long before the intervals changed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypeGuard

from ftbench.run.errors import UserError

MAX_RESAMPLES = 100_000
MIN_RESAMPLES = 100


def parse(text: str | None) -> float | str | None:
    """A number from the command line (``2000``, ``1e4``, ``nan``), left to ``check`` to judge;
    text that is no number stays text, so that ``check`` names it in its one line."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def check(choice: Mapping, min_resamples: int = MIN_RESAMPLES) -> dict:
    """``choice`` (margin, confidence, resamples: settled, ``judgement.settings``) if valid, with
    ``resamples`` an int; else a ``UserError`` naming the value and what is allowed."""
    margin, confidence, resamples = (choice.get(k) for k in ("margin", "confidence", "resamples"))
    if not _real(margin) or not 0 <= margin < 1:
        raise UserError(f"report.margin={margin!r} is not valid; allowed: an accuracy difference "
                        "from 0 up to (not including) 1, e.g. 0.01")
    if not _real(confidence) or not 0.5 < confidence < 1:
        raise UserError(f"report.confidence={confidence!r} is not valid; allowed: a number above 0.5 "
                        "and below 1, e.g. 0.95")
    if not _real(resamples) or resamples != int(resamples) or not min_resamples <= resamples <= MAX_RESAMPLES:
        raise UserError(f"report.resamples={resamples!r} is not valid; allowed: a whole number "
                        f"{min_resamples}..{MAX_RESAMPLES} (more would exhaust memory, not sharpen "
                        "the intervals), e.g. 2000")
    return {**choice, "margin": float(margin), "confidence": float(confidence), "resamples": int(resamples)}


def _real(value: object) -> TypeGuard[float]:
    """A finite number (never a bool): what a margin, a confidence and a count must be."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
