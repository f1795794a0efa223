"""Keep credentials out of everything a run records or sends: results, saved configs, logs, W&B.

Credentials belong in the environment or a netrc file, but a config can still carry one
(``+logger.api_key=...``, or ``${oc.env:WANDB_API_KEY}`` in a value). A secret is the value
of a key whose name says it holds one (``*key``, ``*token``, ``*secret``, ``*password``), or
the value of an environment variable named that way, wherever it shows up.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import yaml

from ftbench.run_io import atomic_write

# api_key, hf_token, client_secret, db_password, aws_access_key ... (not "keys", a list of names)
SECRET_KEY = re.compile(r"api[_-]?key|token|secret|password|passwd|credential|key$", re.IGNORECASE)
MASK = "***"
_MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words and numbers


def is_secret_name(name: object) -> bool:
    return isinstance(name, str) and bool(SECRET_KEY.search(name))


def secret_values() -> list[str]:
    """Values of secret-named environment variables, longest first."""
    values = {v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= _MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    for value in secret_values() if secrets is None else secrets:
        text = text.replace(value, MASK)
    return _redact_assignments(text)


# ``api_key=abc`` / ``+wandb.api_key=abc`` as Hydra overrides appear in argv and saved files.
_ASSIGNMENT = re.compile(r"([\w.+~-]*(?:key|token|secret|password|passwd|credentials?))=([^\s'\",\]]+)",
                         re.IGNORECASE)


def _redact_assignments(text: str) -> str:
    return _ASSIGNMENT.sub(lambda m: f"{m.group(1)}={MASK}", text)


def redact(data: Any, secrets: list[str] | None = None) -> Any:
    """A copy of a nested dict/list with every secret replaced by ``***``."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(data, dict):
        return {k: MASK if is_secret_name(k) and v not in (None, "") else redact(v, secrets)
                for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact(v, secrets) for v in data]
    if isinstance(data, str):
        return redact_text(data, secrets)
    return data


def redact_saved_configs(hydra_dir: Path) -> None:
    """Rewrite the YAML files Hydra saved for this run (config, overrides) without secrets."""
    for path in sorted(hydra_dir.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        clean = redact(data)
        if clean != data:
            text = yaml.safe_dump(clean, sort_keys=False)
            atomic_write(path, lambda tmp, text=text: Path(tmp).write_text(text))


class RedactingFilter(logging.Filter):
    """Masks secrets in every record a handler writes (Hydra's log file, the console)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def redact_logs() -> None:
    """Attach the filter to the root logger's handlers, which every library logger reaches."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
