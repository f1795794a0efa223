"""Writing and reading ``result.json``: built by one function, read by one.

What a result holds is declared once, in ``ftbench.run.schema`` (pydantic models, schema
``SCHEMA_VERSION``); ``build_result`` validates what a run produced against it before anything
is written, and ``read_result`` (through ``ftbench.run.migrate.parse``) validates what a file
holds, migrating an older schema. Reading needs no torch and refuses what is not a result: a
file too large, not a regular file, not JSON, nested beyond reason, or with parts of the wrong
shape. A completed run holds its identity (``strategy``, ``model``, ``dataset``, ``seed``, the
resolved ``config`` with secrets masked), ``metrics``, ``cost``, ``history``, ``groups``,
``data``, ``versions``, ``runtime`` and, when it was tested, ``predictions`` (the file of its
per-example test predictions); a failed or diverged one holds its identity, its ``status``
and a one-line ``error`` instead.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from ftbench.run.atomic import write_json
from ftbench.run.fields import WRITING, Part, number
from ftbench.run.migrate import UnreadableResult, parse, problem
from ftbench.run.provenance import versions
from ftbench.run.schema import (
    SCHEMA_VERSION,
    STATUSES,
    Cost,
    Data,
    Epoch,
    Group,
    Metrics,
    Record,
    Result,
    Runtime,
    judged_by,
)

RESULT_FILE = "result.json"
WEIGHTS_FILE = "model.safetensors"
PREDICTIONS_FILE = "predictions.npz"
SAVED_CONFIG = Path(".hydra") / "config.yaml"  # Hydra's copy of the run's config

MAX_BYTES = 64 * 2**20  # far above any real result (its history grows by ~1 KB an epoch)
MAX_INT_DIGITS = 30     # larger integers are no count or seed: refused, never overflow later


def identity(cfg) -> dict:
    """Who the run is: strategy, model, dataset, seed and the resolved config, secrets masked."""
    from omegaconf import OmegaConf

    from ftbench.run.redaction import redact_config

    record = {key: OmegaConf.select(cfg, path, default=None, throw_on_resolution_failure=False)
              for key, path in (("strategy", "strategy.name"), ("model", "model.name"),
                                ("dataset", "dataset.name"), ("seed", "seed"))}
    record["config"] = redact_config(cfg)
    return record


@dataclass(frozen=True)
class ShiftSummary:
    """What the shifted test sets add to a result (``ShiftEvaluation.summary``), kept apart from
    training: ``metrics.shift``, ``data.shift_hashes`` and the ``cost.shift_eval_*`` figures."""

    accuracy: dict[str, float | None] | None = None
    hashes: dict[str, str] = field(default_factory=dict)
    images: int = 0
    seconds: float = 0.0
    flops: float = 0.0


P = TypeVar("P", bound=Part)


def build_result(cfg, *, status: str = "completed", metrics: Metrics | Mapping[str, Any] | None = None,
                 cost: Cost | Mapping[str, Any] | None = None,
                 history: Sequence[Epoch | Mapping[str, Any]] = (),
                 groups: Sequence[Group | Mapping[str, Any]] = (),
                 data: Data | Mapping[str, Any] | None = None,
                 shift: ShiftSummary | None = None, predictions: str | None = None,
                 error: BaseException | None = None, runtime: Runtime | Mapping[str, Any] | None = None
                 ) -> Result:
    """The one place a ``Result`` is assembled, from the parts a run produced, and checked
    against the schema: a part the schema does not declare, or of another type, raises
    ``pydantic.ValidationError`` here, before anything is written. The run's writers give the
    parts as models built by keyword (a misnamed field is a type error); tests may give mappings.

    ``error`` makes a failed (or diverged) record: identity, status, the error's one line; a run
    that trained adds what its shifted test sets measured (``shift``, a ``ShiftSummary``).
    ``runtime`` is ``ftbench.run.threads.KeepThreads.record()``: the same seed repeats a run bit
    for bit only with the same versions, hardware and thread count.
    """
    record: dict[str, Any] = {"schema": SCHEMA_VERSION, "status": status}
    if cfg is not None:
        record.update(identity(cfg))
    if error is not None:
        from ftbench.run.failures import one_line

        record["error"] = one_line(error)
    else:
        shift = shift or ShiftSummary()
        record.update(
            groups=[_plain(_as(Group, g)) for g in groups],
            metrics=_plain(_as(Metrics, metrics).merged(Metrics(shift=shift.accuracy))),
            cost=_plain(_as(Cost, cost).merged(Cost(
                shift_eval_flops=shift.flops, shift_eval_seconds=shift.seconds,
                shift_eval_images=shift.images))),
            history=[_plain(_as(Epoch, h)) for h in history],
            data=_plain(_as(Data, data).merged(Data(shift_hashes=shift.hashes))),
            predictions=predictions,
        )
    record["versions"] = _plain(versions())
    record["runtime"] = _plain(_as(Runtime, runtime))
    return Result.model_validate(record, context=WRITING)


def _as(model: type[P], part: P | Mapping[str, Any] | None) -> P:
    """A part given as a model, or as a mapping (tests), as the model: validated as written."""
    return part if isinstance(part, model) else model(**dict(part or {}))


def _plain(part: Part) -> dict[str, Any]:
    """What was set in a part, as plain data."""
    return part.model_dump(by_alias=True, exclude_unset=True)


def write_result(run_dir: str | Path, result: Result) -> Path:
    return write_json(Path(run_dir) / RESULT_FILE, result.to_data())


# -- reading ----------------------------------------------------------------------------------
def read_result(run_dir: str | Path) -> Result:
    """The ``result.json`` of ``run_dir``, checked against the schema (an older schema migrated).

    Raises ``FileNotFoundError`` when there is none and ``UnreadableResult`` (with the reason)
    when what is there is no result. Reading never follows into a device or a FIFO and never
    holds more than ``MAX_BYTES``; it evaluates nothing (no interpolation is resolved).
    """
    path = Path(run_dir) / RESULT_FILE
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO would block an ordinary open
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableResult("not a regular file")
        if info.st_size > MAX_BYTES:
            raise UnreadableResult(f"{info.st_size} bytes, over the limit of {MAX_BYTES}")
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:  # grew since it was looked at
        raise UnreadableResult(f"over the limit of {MAX_BYTES} bytes")
    try:
        data = json.loads(raw, parse_int=_bounded_int)
    except RecursionError:
        raise UnreadableResult("nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise UnreadableResult(f"not JSON ({str(err).splitlines()[0]})") from None
    return parse(data, Result)


def job_record(job_dir: str | Path) -> Record:
    """What a job folder says of its run, for the report, the tuned comparison and progress:
    its ``result.json``; an ``unreadable`` record with the reason; or, for a job that left its
    saved config but no result (crashed, killed, interrupted), a ``failed`` record."""
    job_dir = Path(job_dir)
    try:
        return read_result(job_dir)
    except FileNotFoundError:
        return _killed_record(job_dir)
    except (OSError, UnreadableResult) as err:
        return unreadable_record(err)


def unreadable_record(err: OSError | UnreadableResult) -> Record:
    """The record of a job whose ``result.json`` could not be read: why, and who it says it is."""
    who = getattr(err, "who", {})
    return Record(status="unreadable", error=f"unreadable {RESULT_FILE}: {err}",
                  strategy=_text(who.get("strategy")), seed=_integer(who.get("seed")))


def _killed_record(job_dir: Path) -> Record:
    from ftbench.run.failures import resume_command

    error = f"no {RESULT_FILE} (the job crashed or was killed)"
    if (job_dir / "last.ckpt").is_file():
        error = (f"no {RESULT_FILE}: interrupted after a checkpoint; continue with: "
                 f"{resume_command(job_dir.absolute())}")
    config = _saved_config(job_dir / SAVED_CONFIG)
    if config is None:
        return Record(status="failed", error=error)

    def name(key: str) -> str | None:
        part = config.get(key)
        return _text(part.get("name")) if isinstance(part, dict) else None

    return Record(status="failed", error=error, config=config, seed=_integer(config.get("seed")),
                  strategy=name("strategy"), model=name("model"), dataset=name("dataset"))


def _saved_config(path: Path) -> dict | None:
    """Hydra's saved config as plain data (never resolved), or None if it is not readable."""
    import yaml

    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
            return None
        config = yaml.load(path.read_text(), Loader=_plain_yaml())  # a SafeLoader
    except (OSError, ValueError, RecursionError, yaml.YAMLError):
        return None
    return config if isinstance(config, dict) and problem({"config": config}) is None else None


@cache
def _plain_yaml():
    """Built on first use: reading a ``result.json`` needs no yaml."""
    import yaml

    class PlainYaml(yaml.SafeLoader):
        """Safe YAML without aliases: Hydra writes none, and an alias to an alias to … makes a
        file of a few lines a structure of billions of nodes for whatever walks it."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise yaml.YAMLError("an alias (a saved config has none)")
            return super().compose_node(parent, index)

    return PlainYaml


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


__all__ = ["SCHEMA_VERSION", "STATUSES", "Record", "Result", "UnreadableResult", "judged_by", "number",
           "problem"]  # read with the contract
