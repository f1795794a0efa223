"""Keep credentials out of everything a run records or sends (configs, results, W&B).

Credentials belong in the environment or a netrc file, but a config can still carry one
(``+logger.api_key=...``); any key whose name says it holds a secret is masked.
"""

from __future__ import annotations

import re
from typing import Any

SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|passwd|credential)", re.IGNORECASE)
MASK = "***"


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret-looking key's value replaced by ``***``."""
    if isinstance(value, dict):
        return {k: MASK if isinstance(k, str) and SECRET_KEY.search(k) and v is not None else redact(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value
