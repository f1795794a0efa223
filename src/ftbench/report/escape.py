"""Text read from results, escaped for the format the report writes it into.

Names, errors and folder names come from files anyone who can write into a sweep folder
controls; each writer passes them through the function of its format, so that a name is shown as
the text it is and never becomes structure (what each escapes, and why: docs/report.md).
"""

from __future__ import annotations

import re

_MD = {"\\": "\\\\", "|": "\\|", "&": "&amp;", "<": "&lt;", ">": "&gt;"}
# line breaks (\n, \r, the Unicode line and paragraph separators) and other control characters
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def md(value) -> str:
    """``value`` as text inside a markdown table cell or sentence: one line, no markup of its own."""
    text = _BREAKS.sub(" ", str(value))
    return "".join(_MD.get(c, c) for c in text)


def csv_cell(value):
    """``value`` as a ``report.csv`` cell: text that a spreadsheet would evaluate gets a leading
    apostrophe; numbers, booleans and empty cells are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def plot_text(value) -> str:
    """``value`` as plot text: on one line, every ``$`` literal, so no mathtext is parsed."""
    return _BREAKS.sub(" ", str(value)).replace("$", r"\$")
