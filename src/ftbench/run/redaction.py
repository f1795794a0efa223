"""Keep credentials out of everything a run records, sends or prints.

Credentials belong in the environment or a netrc file, but a config can still carry one
(``+logger.api_key=...``, or ``${oc.env:WANDB_API_KEY}`` in a value). A secret is the value
of a key whose name says it holds one (``*key``, ``*token``, ``*secret``, ``*password``), or
the value of an environment variable named that way, wherever it shows up: in configs and
results (masked by key, or by the variable a value was read from), in free text such as log
lines, Hydra's saved files and W&B's records (masked by value), and in job folder names
(secret overrides are left out of them). The password of a URL (``scheme://user:PASSWORD@host``,
a database URL in ``tune.storage`` say) is a secret wherever the URL appears, whatever its key.

Free text is searched for every secret of at least ``MIN_TEXT_SECRET`` characters that is
known to be one (given under a secret key, or read from a secret variable), and for the
values of secret-named environment variables of at least ``MIN_ENV_SECRET`` characters;
shorter strings would mask ordinary words and numbers. A shorter secret is still masked as
a config value. Command-line overrides are read by Hydra's parser, not searched as text:
``ftbench.run.secret_overrides``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ftbench.run.atomic import write_text

# api_key, hf_token, client_secret, db_password, aws_access_key ... (not "keys", a list of names)
SECRET_KEY = re.compile(r"api[_-]?key|token|secret|password|passwd|credential|key$", re.IGNORECASE)
MASK = "***"
MIN_ENV_SECRET = 6  # any secret-named environment variable
MIN_TEXT_SECRET = 4  # a value known to be a secret
# what a saved YAML file that does not parse holds instead of its content (a YAML comment)
WITHHELD = "# withheld by ftbench: this file did not parse as YAML, so its secrets could not be masked"
log = logging.getLogger("ftbench")
_known: set[str] = set()  # values given under secret keys or read from secret variables


def is_secret_name(name: object) -> bool:
    return isinstance(name, str) and bool(SECRET_KEY.search(name))


def is_secret_key(dotted: str) -> bool:
    """Whether a config path (``foo.api_key``, ``secrets.db``) holds a secret: any of its parts
    is named like one (``redact`` masks a whole node under such a key)."""
    return any(is_secret_name(part) for part in re.split(r"[.@\[\]]", dotted))


def remember(values: Iterable[object]) -> None:
    """Treat ``values`` as secrets from now on, in this process."""
    _known.update(s for s in (str(v).strip() for v in values if v is not None) if s)


def secret_values() -> list[str]:
    """Every secret to search free text for, longest first."""
    env = {v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= MIN_ENV_SECRET}
    return sorted(env | {s for s in _known if len(s) >= MIN_TEXT_SECRET}, key=len, reverse=True)


# ``api_key=abc`` / ``+wandb.api_key='a b'`` / ``keys=[a,b]``, as overrides appear in argv,
# log lines and saved files.
_ASSIGNMENT = re.compile(r"([\w.+~@-]*(?:api[_-]?keys?|key|tokens?|secrets?|passwords?|passwd|credentials?))="
                         r"(\[[^\]]*\]|\{[^}]*\}|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s'\",\]]+)",
                         re.IGNORECASE)


# ``postgresql://user:PASSWORD@host/db``: the password, up to the ``@`` (a ``/`` in it is
# percent-encoded in a URL; a ``host:port/path@x`` is not mistaken for one)
_URL_CREDENTIAL = re.compile(r"\b([a-z][a-z0-9+.\-]*://[^\s:/@'\"\[\]{},]*:)[^\s@/'\"]+(?=@)",
                             re.IGNORECASE)


def url_passwords(text: str) -> list[str]:
    """The passwords of the URLs in ``text``."""
    return [m.group(0)[len(m.group(1)):] for m in _URL_CREDENTIAL.finditer(text)]


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    for value in secret_values() if secrets is None else secrets:
        text = text.replace(value, MASK)
    text = _URL_CREDENTIAL.sub(lambda m: f"{m.group(1)}{MASK}", text)
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
        return MASK if data.strip() in _known else redact_text(data, secrets)
    return data


# ${oc.env:NAME}, ${oc.env:NAME,default}, ${oc.decode:${oc.env:NAME}}
_ENV_REFERENCE = re.compile(r"oc\.env:\s*['\"]?([A-Za-z_]\w*)")


def redact_config(cfg: DictConfig) -> Any:
    """The resolved config as plain containers, secrets masked: values under secret keys, and
    values read from secret-named environment variables whatever their length (which are
    remembered as secrets for free text too)."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException:  # the failure may be an interpolation that cannot resolve
        resolved = raw
    return redact(_mask_env_values(raw, resolved))


def _mask_env_values(raw: Any, resolved: Any) -> Any:
    if isinstance(raw, str) and any(is_secret_name(n) for n in _ENV_REFERENCE.findall(raw)):
        remember(_leaves(resolved))
        return MASK
    if isinstance(raw, dict) and isinstance(resolved, dict):
        return {k: _mask_env_values(raw.get(k), v) for k, v in resolved.items()}
    if isinstance(raw, list) and isinstance(resolved, list) and len(raw) == len(resolved):
        return [_mask_env_values(r, v) for r, v in zip(raw, resolved, strict=True)]
    return resolved


def _leaves(value: Any) -> Iterator[object]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def redact_saved_configs(folder: Path, pattern: str = "*.yaml") -> None:
    """Rewrite the YAML files Hydra saved (config, overrides, hydra, multirun) without secrets.

    A file that does not parse cannot be searched for secrets by key: its content is replaced
    by ``WITHHELD`` (and a warning names it), never left as it was. A file that cannot be read
    or written raises.
    """
    for path in sorted(Path(folder).glob(pattern)):
        text = path.read_text()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            write_text(path, f"{WITHHELD}\n")
            log.warning("%s does not parse as YAML (%s): its content is replaced by a note, since "
                        "secrets in it could not be masked", path, _yaml_problem(err))
            continue
        clean = redact(data)
        if clean != data:
            write_text(path, yaml.safe_dump(clean, sort_keys=False))


def _yaml_problem(err: yaml.YAMLError) -> str:
    """What is wrong and where, without the quoted text PyYAML's message carries (which may
    hold a secret)."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{getattr(err, 'problem', None) or type(err).__name__}{where}"


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports it when the record is emitted
        return
    clean = redact_text(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))


def install_log_redaction() -> None:
    """Mask secrets in every log record this process creates, whatever handler writes it.

    A record factory rather than a handler filter: Hydra replaces its handlers when it
    configures logging for a job, after its launcher has logged the job's overrides.
    """
    base = logging.getLogRecordFactory()
    if getattr(base, "redacts_secrets", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        _redact_record(record)
        return record

    factory.redacts_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
