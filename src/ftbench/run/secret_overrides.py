"""Secrets in command-line overrides, read by Hydra's own parser (``ftbench.run.overrides``).

An override sets a secret when its key is named like one (``+logger.api_key=x``, see
``ftbench.run.redaction``) or when a dict it gives has such a key (``+logger={api_key: x}``).
Its values are remembered as secrets before Hydra logs anything, masked where the command line
is recorded (W&B, a suite's or a study's record) and left out of job folder names. An argument
Hydra cannot parse is read by its text (the key before its ``=``): Hydra refuses it in an
error that quotes it, and that error must not show its secret.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from hydra.core.override_parser.types import Override, QuotedString
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig

from ftbench.run.overrides import override_key, parse_overrides
from ftbench.run.redaction import MASK, is_secret_key, is_secret_name, redact_text, url_passwords


def _parsed(arg: str) -> Override | None:
    """``arg`` as Hydra's parser reads it (``ftbench.run.overrides``); None for an option
    (``-m``) or an argument Hydra cannot parse (Hydra refuses it later, quoting it)."""
    if arg.startswith("-"):
        return None
    try:
        return parse_overrides([arg])[0]
    except OverrideParseException:
        return None


def _unparsed_key(arg: str) -> str | None:
    """The key of an argument Hydra cannot parse, read from its text before the ``=``: its value
    must be masked in the error that quotes it."""
    if arg.startswith("-") or "=" not in arg:
        return None
    return override_key(arg.partition("=")[0])


def _values(override: Override) -> list[Any]:
    """The values ``override`` gives, quotes removed: one, or each of a sweep's."""
    if not override.is_sweep_override():
        return [override.value()]
    try:
        return [_unquoted(v) for v in override.sweep_iterator()]
    except HydraException:  # a glob or an interval lists no values: its text is all there is
        return []


def _unquoted(value: Any) -> Any:
    if isinstance(value, QuotedString):
        return value.text
    if isinstance(value, list):
        return [_unquoted(v) for v in value]
    if isinstance(value, dict):
        return {k: _unquoted(v) for k, v in value.items()}
    return value


def _secret_leaves(value: Any, secret: bool) -> Iterator[object]:
    """The secrets in a value: every leaf under a secret key (``secret``), and below it those
    under a secret-named key of a dict (``+logger={api_key: x}``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _secret_leaves(item, secret or is_secret_name(key))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secret_leaves(item, secret)
    elif secret and value is not None:
        yield value


def carries_secret(override: Override) -> bool:
    """Whether ``override`` sets a secret: its key is named like one, or a dict it gives has one."""
    return is_secret_key(override.key_or_group) or any(_secret_leaves(_values(override), False))


def override_secrets(args: Iterable[str]) -> list[str]:
    """The values that command-line overrides ``args`` give to secret keys (each element of a
    list or a sweep, a quoted value without its quotes, a secret-named key of a dict value), and
    the text of such a value as the command line and the logs show it."""
    found: list[str] = []
    for arg in args:
        found.extend(url_passwords(arg))  # in free text also where a URL is cut (a folder name)
        override = _parsed(arg)
        if override is None:
            key = _unparsed_key(arg)
            if key is not None and is_secret_key(key):
                found.append(arg.partition("=")[2].strip("'\""))
            continue
        secret = is_secret_key(override.key_or_group)
        if secret and "=" in arg:
            found.append(override.get_value_string().strip("'\""))
        found.extend(str(v) for v in _secret_leaves(_values(override), secret))
    return found


def redact_overrides(args: Iterable[str]) -> list[str]:
    """Command-line arguments with the values of secret keys (and known secrets) masked: an
    override that sets a secret keeps its key, its whole value becomes ``***``."""
    clean = []
    for arg in args:
        override = _parsed(arg)
        if override is not None and "=" in arg and carries_secret(override):
            clean.append(f"{override.get_key_element()}={MASK}")
        elif override is None and is_secret_key(_unparsed_key(arg) or ""):
            clean.append(f"{arg.partition('=')[0]}={MASK}")
        else:
            clean.append(redact_text(arg))
    return clean


@contextmanager
def redacted_argv() -> Iterator[None]:
    """``sys.argv`` without secrets while a library records it (W&B stores the command line)."""
    saved = sys.argv
    sys.argv = [saved[0], *redact_overrides(saved[1:])] if saved else saved
    try:
        yield
    finally:
        sys.argv = saved


MAX_DIRNAME = 200  # bytes; file systems allow 255 per folder name


def job_dirname(*, _root_: DictConfig) -> str:
    """Hydra's ``override_dirname`` for a job's folder, without secret overrides, as one
    folder name (``/`` replaced) short enough for any file system (a long one keeps its
    start and a digest of the whole)."""
    spec = _root_.hydra.job.config.override_dirname
    items = [redact_text(o.input_line or "", secrets=[])  # a URL's password, before "/" is replaced
             for o in parse_overrides(list(_root_.hydra.overrides.task))
             if o.key_or_group not in spec.exclude_keys and not carries_secret(o)]
    name = spec.item_sep.join(sorted(items)).replace("=", spec.kv_sep).replace("/", "_")
    if len(name.encode()) > MAX_DIRNAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = name.encode()[:MAX_DIRNAME - 11].decode(errors="ignore") + "_" + digest
    return name
