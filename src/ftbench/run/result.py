"""The result contract: what ``result.json`` holds, built by one function, read by one.

Every run writes ``result.json`` into its folder (atomically); the report, the tuned
comparison and the progress lines read it only through ``read_result``, which needs no torch
and refuses what is not a result: a file too large, not a regular file, not JSON, nested
beyond reason, or with parts of the wrong type. A completed run holds its identity
(``strategy``, ``model``, ``dataset``, ``seed``, the resolved ``config`` with secrets masked),
``metrics``, ``cost``, ``history``, ``groups``, ``data``, ``versions`` and, when it was tested,
``predictions`` (the file of its per-example test predictions); a failed or diverged one holds
its identity, its ``status`` and a one-line ``error`` instead.
"""

from __future__ import annotations

import json
import os
import stat
from functools import cache
from pathlib import Path
from typing import TypedDict

from ftbench.run.atomic import write_json
from ftbench.run.provenance import versions
from ftbench.run.result_shape import SCHEMA_VERSION, STATUSES, judged_by, number, problem

RESULT_FILE = "result.json"
WEIGHTS_FILE = "model.safetensors"
PREDICTIONS_FILE = "predictions.npz"
SAVED_CONFIG = Path(".hydra") / "config.yaml"  # Hydra's copy of the run's config

MAX_BYTES = 64 * 2**20  # far above any real result (its history grows by ~1 KB an epoch)
MAX_INT_DIGITS = 30     # larger integers are no count or seed: refused, never overflow later


class Metrics(TypedDict, total=False):
    val_acc: float | None
    test_acc: float | None
    test_loss: float | None
    epochs: int
    shift: dict | None        # accuracy per shifted test set and their ``mean``
    per_class_test_acc: dict  # class name -> test accuracy (None: absent from the test split)
    confusion_matrix: list    # counts, rows the true class


class Cost(TypedDict, total=False):
    train_seconds: float
    train_flops: float
    train_memory_mb: float
    peak_memory_mb: float
    trainable_params: int
    total_params: int
    images_per_second: float
    wall_seconds: float


class Result(TypedDict, total=False):
    schema: int
    status: str               # one of STATUSES
    strategy: str | None
    model: str | None
    dataset: str | None
    seed: int | None
    config: dict
    metrics: Metrics
    cost: Cost
    history: list[dict]       # one entry per epoch: epoch, train_loss, val_acc, lrs, ...
    groups: list[dict]        # layer groups: name, params
    data: dict                # classes, split sizes, input size, hashes
    versions: dict
    runtime: dict             # torch_threads and what chose it (ftbench.run.threads)
    predictions: str | None   # PREDICTIONS_FILE beside result.json, or None
    error: str                # failed and diverged runs


class UnreadableResult(ValueError):
    """A ``result.json`` that is not a result; the message says why, in a few words, and
    ``who`` keeps what it says of its strategy and seed, if anything (a report counts it there)."""

    def __init__(self, reason: str, who: dict | None = None) -> None:
        super().__init__(reason)
        self.who = who or {}


def identity(cfg) -> dict:
    """Who the run is: strategy, model, dataset, seed and the resolved config, secrets masked."""
    from omegaconf import OmegaConf

    from ftbench.run.redaction import redact_config

    record = {key: OmegaConf.select(cfg, path, default=None, throw_on_resolution_failure=False)
              for key, path in (("strategy", "strategy.name"), ("model", "model.name"),
                                ("dataset", "dataset.name"), ("seed", "seed"))}
    record["config"] = redact_config(cfg)
    return record


def build_result(cfg, *, status: str = "completed", metrics: dict | None = None, cost: dict | None = None,
                 history: list[dict] | None = None, groups: list[dict] | None = None,
                 data: dict | None = None, shift: dict | None = None, predictions: str | None = None,
                 error: BaseException | None = None, runtime: dict | None = None) -> Result:
    """The one place a ``Result`` is assembled, from the parts a run produced.

    ``error`` makes a failed (or diverged) record: identity, status, the error's one line. For
    a run that trained, ``shift`` is ``ShiftEvaluation.summary()``: it adds ``metrics.shift``,
    ``data.shift_hashes`` and the ``cost.shift_eval_*`` figures, kept apart from training.
    ``runtime`` is ``ftbench.run.threads.ThreadShare.record()``: the same seed repeats a run bit
    for bit only with the same versions, hardware and thread count.
    """
    record: Result = {"schema": SCHEMA_VERSION, "status": status}
    if cfg is not None:
        record.update(identity(cfg))
    if error is not None:
        from ftbench.run.failures import one_line

        record["error"] = one_line(error)
    else:
        shift = shift or {}
        record.update(
            groups=groups or [],
            metrics={**(metrics or {}), "shift": shift.get("accuracy")},
            cost={**(cost or {}), "shift_eval_flops": shift.get("flops", 0.0),
                  "shift_eval_seconds": shift.get("seconds", 0.0),
                  "shift_eval_images": shift.get("images", 0)},
            history=history or [],
            data={**(data or {}), "shift_hashes": shift.get("hashes", {})},
            predictions=predictions,
        )
    record["versions"] = versions()
    record["runtime"] = runtime or {}
    return record


def write_result(run_dir: str | Path, result: Result) -> Path:
    return write_json(Path(run_dir) / RESULT_FILE, result)


# -- reading ----------------------------------------------------------------------------------
def read_result(run_dir: str | Path) -> Result:
    """The ``result.json`` of ``run_dir``, checked against the contract.

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
    reason = problem(data)
    if reason:
        who = {k: _plain(data.get(k)) for k in ("strategy", "seed")} if isinstance(data, dict) else {}
        raise UnreadableResult(reason, who)
    data.setdefault("status", "completed" if "metrics" in data else "failed")
    return data


def job_record(job_dir: str | Path) -> dict:
    """What a job folder says of its run, for the report, the tuned comparison and progress:
    its ``result.json``; an ``unreadable`` record with the reason; or, for a job that left its
    saved config but no result (crashed, killed, interrupted), a ``failed`` record."""
    job_dir = Path(job_dir)
    try:
        return read_result(job_dir)
    except FileNotFoundError:
        return _killed_record(job_dir)
    except (OSError, UnreadableResult) as err:
        return {"status": "unreadable", "error": f"unreadable {RESULT_FILE}: {err}",
                **getattr(err, "who", {})}


def _killed_record(job_dir: Path) -> dict:
    from ftbench.run.failures import resume_command

    error = f"no {RESULT_FILE} (the job crashed or was killed)"
    if (job_dir / "last.ckpt").is_file():
        error = (f"no {RESULT_FILE}: interrupted after a checkpoint; continue with: "
                 f"{resume_command(job_dir.absolute())}")
    record = {"status": "failed", "error": error}
    config = _saved_config(job_dir / SAVED_CONFIG)
    if config is not None:
        def name(key: str):
            part = config.get(key)
            return _plain(part.get("name")) if isinstance(part, dict) else None

        record.update(config=config, seed=_plain(config.get("seed")),
                      **{key: name(key) for key in ("strategy", "model", "dataset")})
    return record


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


def _plain(value):
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


__all__ = ["SCHEMA_VERSION", "STATUSES", "judged_by", "number", "problem"]  # read with the contract
