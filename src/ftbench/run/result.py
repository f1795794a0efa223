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
import math
import os
import platform
import stat
import subprocess
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TypedDict

from ftbench.run.atomic import write_json

SCHEMA_VERSION = 1
RESULT_FILE = "result.json"
WEIGHTS_FILE = "model.safetensors"
PREDICTIONS_FILE = "predictions.npz"
SAVED_CONFIG = Path(".hydra") / "config.yaml"  # Hydra's copy of the run's config

STATUSES = ("completed", "pruned", "failed", "diverged")
MAX_BYTES = 64 * 2**20  # far above any real result (its history grows by ~1 KB an epoch)
MAX_DEPTH = 64          # a config nests a few levels; JSON nested deeper is not a result
MAX_INT_DIGITS = 30     # larger integers are no count or seed: refused, never overflow later
# no measurement comes near this: a larger figure is taken for none, so that sums, means and
# spreads over any number of runs stay finite
MAX_MAGNITUDE = 1e100


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
    ``runtime`` (threads and device) joins ``versions``: same seed, same result holds only for
    the same versions, hardware and thread count.
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
    record["versions"] = {**versions(), **(runtime or {})}
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


_PARTS = {"metrics": dict, "config": dict, "cost": dict, "data": dict, "versions": dict,
          "history": list, "groups": list}
_TEXTS = ("status", "strategy", "model", "dataset", "error", "predictions")


def problem(data: object) -> str | None:
    """Why ``data`` is not a result (the first thing found), or None."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if _depth(data) > MAX_DEPTH:
        return "nested too deeply"
    schema = data.get("schema", SCHEMA_VERSION)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema > SCHEMA_VERSION:
        return f"schema {_shown(schema)}; this ftbench reads schema {SCHEMA_VERSION} and older"
    for key, kind in _PARTS.items():
        if key in data and not isinstance(data[key], kind):
            found = "null" if data[key] is None else type(data[key]).__name__
            return f"{key} is {found}, not {'an object' if kind is dict else 'a list'}"
    for key in ("history", "groups"):
        if not all(isinstance(entry, dict) for entry in data.get(key) or []):
            return f"{key} holds an entry that is not an object"
    for key in _TEXTS:
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"{key} is not a string"
    if data.get("status") is not None and data["status"] not in STATUSES:
        return f"status {_shown(data['status'])} is not one of {', '.join(STATUSES)}"
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        return "seed is not an integer"
    for path, (fits, shape) in _SHAPES.items():
        part, key = path.split(".")
        value = (data.get(part) or {}).get(key)
        if value is not None and not fits(value):
            return f"{path} is not {shape}"
    for part, fields in _ENTRY_SHAPES.items():
        for i, entry in enumerate(data.get(part) or []):
            for key, (fits, shape) in fields.items():
                if entry.get(key) is not None and not fits(entry[key]):
                    return f"{part}[{i}].{key} is not {shape}"
    if data.get("status", "completed" if "metrics" in data else "failed") == "completed":
        metric = judged_by(data)
        if number((data.get("metrics") or {}).get(metric)) is None:
            return f"metrics.{metric} is {_shown((data.get('metrics') or {}).get(metric))}, not a number"
    return None


def _shown(value) -> str:
    """A value in a reason: its repr, cut short (the value may be megabytes of text)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _numbers_by_name(value) -> bool:
    return isinstance(value, dict) and all(v is None or number(v) is not None for v in value.values())


def _numbers(value) -> bool:
    return isinstance(value, list) and all(v is None or number(v) is not None for v in value)


def _names(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _counts_table(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(line, list) and len(line) == len(value) and all(_count(c) for c in line) for line in value)


# The parts a reader relies on inside the record, where present and not null: a part of another
# shape makes the record no result (scalar figures elsewhere, read as numbers, count as absent
# when they are not one).
_SHAPES = {
    "metrics.per_class_test_acc": (_numbers_by_name, "an object of numbers"),
    "metrics.shift": (_numbers_by_name, "an object of numbers"),
    "metrics.confusion_matrix": (_counts_table, "a square table of counts"),
    "cost.drift": (_numbers_by_name, "an object of numbers"),
    "data.classes": (_names, "a list of names"),
}
_ENTRY_SHAPES = {
    "history": {"epoch": (_count, "a count"), "val_acc": (lambda v: number(v) is not None, "a number"),
                "lrs": (_numbers, "a list of numbers"), "trainable_groups": (_names, "a list of names")},
    "groups": {"name": (lambda v: isinstance(v, str), "a name")},
}


def _depth(value, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def number(value) -> float | None:
    """``value`` as a figure, or None if it is none: not a number, not finite, or beyond
    ``MAX_MAGNITUDE``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and abs(value) <= MAX_MAGNITUDE else None


def judged_by(data: dict) -> str:
    """The metric a completed record must hold: ``test_acc``, or ``val_acc`` for a run that was
    never tested (a search trial of the tuned comparison is judged on validation only)."""
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    tested = (config.get("run") or {}).get("test", True) if isinstance(config.get("run"), dict) else True
    tune = config.get("tune")
    if not tested or (isinstance(tune, dict) and tune.get("phase") == "search"):
        return "val_acc"
    return "test_acc"


# -- provenance -------------------------------------------------------------------------------
def versions() -> dict:
    def dist(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": dist("timm"),
        "lightning": dist("lightning"),
        "ftbench": dist("ftbench"),
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    """The commit of a source checkout (src/ftbench inside it); None for an installed wheel."""
    root = Path(__file__).resolve().parents[3]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=root, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
