"""How a run fails: one clear line for the user, and a record that a sweep can report.

- A ``UserError`` (or a Hydra/OmegaConf error about the command line) is printed as one
  line and the process exits non-zero, with no traceback and no ``result.json``.
- A NaN or infinite loss (``Diverged``, raised by ``ftbench.finetune.divergence.DivergenceGuard``) is
  recorded as ``status: "diverged"``.
- In a multirun, a failing job writes a ``status: "failed"`` record and returns, so the
  other jobs go on; the report lists the failures next to the results.

Imports stay light here (no torch, no Lightning): every module raises ``UserError``.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

from ftbench.run.errors import UserError

__all__ = ["UserError"]  # defined apart so the lowest modules can raise it; named here too

log = logging.getLogger("ftbench")

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_SIGTERM = 128 + 15  # the shell's convention for "terminated by signal 15"


class Diverged(RuntimeError):
    """The training loss became NaN or infinite: the run cannot produce a meaningful result."""


def _sigterm_exception() -> type[BaseException]:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    return SIGTERMException


def visible(text: str) -> str:
    """``text`` with each control character (a newline, a tab, a terminal escape) written as
    its Python escape (``\\n``): a value read from a file name stays on its message's line and
    cannot drive the terminal it is printed to. Other characters, accented ones too, stay."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def one_line(error: BaseException) -> str:
    """The error as a single line that names the bad value and, where known, what is allowed."""
    inner = user_error_within(error) if isinstance(error, HydraException | OmegaConfBaseException) else None
    if inner is not None:  # a resolver's, wrapped by OmegaConf (and Hydra): its own line
        return one_line(inner)
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group, _, choice = error.missing_cfg_file.rpartition("/")
        if group and error.options:
            return f"{group}={choice!r} is not valid; allowed: {', '.join(error.options)}"
    if isinstance(error, OverrideParseException):
        return f"cannot parse the override {error.override!r}: {_first_line(error.message)}"
    if isinstance(error, HydraException) and isinstance(error.__cause__, OmegaConfBaseException):
        key = getattr(error.__cause__, "full_key", None)
        if "not in struct" in str(error.__cause__) and key:
            return (f"{key} is not a setting; check its spelling (or add a new key with "
                    f"+{key}=...)")
    appended = re.match(r"Could not append to config\. An item is already at '(.+)'", str(error))
    if isinstance(error, HydraException) and appended:
        key = appended.group(1)
        return f"+{key}=... adds a setting, but {key} exists already; set it with {key}=..."
    if isinstance(error, UserError):  # one line by design: a line break in it is a value's
        return visible(str(error).strip()) or type(error).__name__
    if isinstance(error, Diverged | HydraException | OmegaConfBaseException):
        return _first_line(error)
    return f"{type(error).__name__}: {_first_line(error)}"


def user_error_within(error: BaseException) -> UserError | None:
    """The ``UserError`` that ``error`` is or wraps: OmegaConf wraps what a resolver raises
    (``${ftbench.strategies:}`` finding a broken strategy plugin) in an error of its own."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _first_line(error: BaseException | str) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def hydra_quoted(value: str) -> str:
    """``value`` as Hydra's override parser reads it back: quoted unless it is plain (the
    folder of a multirun's job holds ``=`` and ``,``, which Hydra would parse). In a quoted
    value Hydra unescapes only the backslashes before a quote and at the end."""
    if re.fullmatch(r"[\w./-]+", value):
        return value
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped) + "'"


def resume_command(run_dir: str | Path) -> str:
    """The command that continues the run in ``run_dir``, ready to paste into a shell."""
    arg = "resume=" + hydra_quoted(str(run_dir))
    if arg != shlex.quote(arg) and not re.search(r'[$`"\\!]', arg):
        arg = f'"{arg}"'  # reads better than shlex's '"'"' for a value with single quotes
    else:
        arg = shlex.quote(arg)
    return f"python -m ftbench.train {arg}"


def exit_for(error: BaseException, run_dir: Path | None = None) -> NoReturn:
    """End the process with one line on stderr and an exit code that tells the kind of failure.

    ``run_dir``: the run's folder, named in the command that continues an interrupted run
    (or carried by the error, as ``run_guarded`` does for a multirun's job).
    """
    if isinstance(error, _sigterm_exception()):
        run_dir = run_dir or getattr(error, "run_dir", None)
        hint = resume_command(run_dir) if run_dir else "python -m ftbench.train resume=<run folder>"
        message, code = f"interrupted by SIGTERM; continue with: {hint}", EXIT_SIGTERM
    elif isinstance(error, Diverged):
        message, code = f"diverged: {one_line(error)}", EXIT_DIVERGED
    else:
        message, code = one_line(error), EXIT_USER_ERROR
    from ftbench.run.redaction import redact_text  # a bad value may be a secret

    print(f"ftbench: error: {redact_text(message)}", file=sys.stderr)
    sys.exit(code)


def expected_failures() -> tuple[type[BaseException], ...]:
    """Failures that end a single run with one line rather than a traceback."""
    return (UserError, Diverged, _sigterm_exception(), HydraException, OmegaConfBaseException)


def one_line_errors(entry: Callable[[], object]) -> Callable[[], object]:
    """Wrap a ``@hydra.main`` entry so that command-line mistakes end as one line.

    Hydra reports its own errors (an unknown config option, a key that does not exist, bad
    override syntax) over several lines, from inside ``hydra.main``. With ``HYDRA_FULL_ERROR``
    set, Hydra re-raises them instead, and we print them here as one line. Anything else
    propagates with its traceback: it is a bug, not a user mistake.
    """

    @functools.wraps(entry)
    def main() -> object:
        os.environ["HYDRA_FULL_ERROR"] = "1"
        try:
            return entry()
        except expected_failures() as err:
            exit_for(err)

    return main


def run_guarded(job: Callable[[], dict], record: Callable[[BaseException, str], None],
                run_dir: Path, multirun: bool) -> dict | None:
    """Run ``job``; a failure ends a single run, and is recorded and survived in a multirun.

    ``record(error, status)`` writes the failure record. A divergence is recorded in both
    modes: the run did start, and its record says why it has no metrics. A single run exits
    from here, inside the Hydra job, because Hydra would add a line of its own to an
    exception that leaves the job.
    """
    try:
        return job()
    except _sigterm_exception() as err:  # a SystemExit: it stops a multirun too
        if not multirun:
            exit_for(err, run_dir)
        # named when the multirun ends (exit_for); Lightning's exception declares no such field
        err.run_dir = run_dir  # type: ignore[attr-defined]
        raise
    except Diverged as err:
        record(err, "diverged")
        if not multirun:
            exit_for(err)
        log.error("diverged: %s", one_line(err))
    except Exception as err:
        if not multirun:
            if isinstance(err, expected_failures()):
                exit_for(err)
            raise
        if not isinstance(err, UserError):
            log.exception("job failed")  # a bug: keep its traceback in the job's log
        log.error("failed: %s", one_line(err))
        record(err, "failed")
    return None
