"""The one exception type for mistakes a user can make.

Anything raised as :class:`UserError` is printed by the entry points as a single line
(no traceback) and ends the process with a non-zero exit code. Everything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class UserError(ValueError):
    """A bad value supplied by the user: the message names it and what is allowed."""


def choice_error(setting: str, value: object, allowed: Iterable[object]) -> UserError:
    """Build the standard error for a value outside a fixed set of choices."""
    allowed_str = ", ".join(str(a) for a in allowed)
    return UserError(f"{setting}={value!r} is not valid; allowed: {allowed_str}")
