"""The result contract, declared once: what ``result.json`` holds, field by field.

The writers build these models by keyword (``Cost(train_flops=...)``), validated as written
(``fields.WRITING``: a wrong value raises) and checked by mypy's pydantic plugin; the reader
(``read_result``, ``job_record``) validates what it reads with ``model_validate``; the JSON
Schema (``result.schema.json``, ``python -m ftbench.schema``) is generated from them; the readers
(report, tuned comparison, suites, progress) read typed attributes. A field renamed here is a
type error wherever the old name is still written or read, and a file holding it is refused.

Schema 2 declares every field; schema 1 (every result before) had the same fields but allowed
any others and could leave out ``status``: ``ftbench.run.migrate.migrate`` reads it.
Torch-free: reading results needs no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidatorFunctionWrapHandler, model_validator
from pydantic_core import PydanticCustomError

from ftbench.run.fields import (
    Amount,
    Count,
    Counts,
    CountsTable,
    Entries,
    Figure,
    Flag,
    Integer,
    Name,
    Names,
    Number,
    Numbers,
    NumbersByName,
    Object,
    Part,
    Text,
    TextsByName,
    shown,
)

SCHEMA_VERSION = 2
STATUSES = ("completed", "pruned", "failed", "diverged")
Status = Literal["completed", "pruned", "failed", "diverged"]
# what a job folder can say of its run: its result's status, or that its result.json is no result
JobStatus = Literal["completed", "pruned", "failed", "diverged", "unreadable"]


class Metrics(Part):
    val_acc: Figure = None
    """Validation accuracy after the last epoch."""
    test_acc: Figure = None
    """Test accuracy of the final weights; null for a run that was not tested."""
    test_loss: Figure = None
    epochs: Amount = None
    """Epochs trained."""
    shift: NumbersByName = None
    """Accuracy on each shifted test set (``"gaussian_noise:3"``, …) and their ``mean``."""
    per_class_test_acc: NumbersByName = None
    """Test accuracy by class name; null for a class the test split lacks."""
    confusion_matrix: CountsTable = None
    """Test counts, rows the true class, columns the predicted one."""

    @property
    def shift_mean(self) -> float | None:
        """Mean accuracy over the corruptions (``shift.mean``)."""
        return (self.shift or {}).get("mean")


class MemoryPhase(Part):
    trainable_groups: Names = None
    input: Counts = None
    """The shape of one training input (features for steps on cached features)."""
    saved_mb: Figure = None
    grads_mb: Figure = None
    optimizer_mb: Figure = None
    features_mb: Figure = None
    total_mb: Figure = None


class TrainMemory(Part):
    method: Text = None
    """``cuda_allocator`` (the device's peak) or ``tensor_accounting`` (counted on CPU)."""
    phases: Entries[MemoryPhase] = []
    """What each set of trainable groups held while training (accounted only)."""


class FlopPhase(Part):
    trainable_groups: Names = None
    input: Counts = None
    first_epoch: Amount = None
    flops_per_image: Figure = None
    """Forward and backward of one training image."""


class FeatureCacheCost(Part):
    used: Flag = None
    """Whether head-only epochs trained on cached backbone features."""
    seconds: Figure = None
    train_seconds: Figure = None
    """The backbone's pass over the training split, counted as training time."""
    images_computed: Amount = None
    bytes: Amount = None
    images_loaded: Amount = None
    flops: NumbersByName = None
    """The backbone's FLOPs per split (train counts as training compute, val/test as evaluation)."""


class Cost(Part):
    train_seconds: Figure = None
    """Training wall-clock, validation excluded, with the feature cache's training pass (s)."""
    wall_seconds: Figure = None
    """The whole job: data, fit, test (s)."""
    epoch_train_seconds: Numbers = None
    train_images: Amount = None
    images_per_second: Figure = None
    train_memory_mb: Figure = None
    """What training held beyond the weights (MB)."""
    train_memory: Object[TrainMemory] | None = None
    peak_memory_mb: Figure = None
    """The process's peak: CUDA peak allocated on GPU, peak resident set on CPU (MB)."""
    trainable_params: Amount = None
    """Parameters that trained at any point of the run."""
    total_params: Amount = None
    train_flops: Figure = None
    eval_flops: Figure = None
    """Validation and test forwards."""
    epoch_train_flops: Numbers = None
    flop_phases: Entries[FlopPhase] | None = None
    eval_flops_per_image: NumbersByName = None
    """Forward FLOPs of one image, by input shape."""
    feature_cache: Object[FeatureCacheCost] | None = None
    drift: NumbersByName = None
    """Per layer group, ``||w - w0|| / ||w0||`` between the starting and the final weights."""
    devices: Amount = None
    shift_eval_flops: Figure = None
    shift_eval_seconds: Figure = None
    shift_eval_images: Amount = None


class Epoch(Part):
    """One entry of ``history``."""

    epoch: Count = None
    train_loss: Figure = None
    val_acc: Number = None
    val_loss: Figure = None
    lrs: Numbers = None
    """The learning rate of each layer group at the epoch's start (0 while frozen)."""
    trainable_groups: Names = None
    trainable_params: Amount = None
    train_seconds: Figure = None
    train_flops: Figure = None


class Group(Part):
    """One layer group, input to output."""

    name: Name = None
    params: Amount = None


class Data(Part):
    num_classes: Amount = None
    classes: Names = None
    train_size: Amount = None
    val_size: Amount = None
    test_size: Amount = None
    augmented: Flag = None
    input_size: Counts = None
    split_hash: Text = None
    """SHA-256 of the three splits together."""
    split_hashes: TextsByName = None
    """SHA-256 of each split's images."""
    shift_hashes: TextsByName = None
    """SHA-256 of each shifted test set's inputs and labels."""


class Versions(Part):
    python: Text = None
    torch: Text = None
    timm: Text = None
    lightning: Text = None
    ftbench: Text = None
    git_commit: Text = None


class Runtime(Part):
    torch_threads: Amount = None
    """The intra-op thread count the run computed with."""
    threads: Text | Amount = None
    """``trainer.threads``: ``auto`` or a count."""
    cores: Amount = None
    workers: Amount = None
    resumed_from_threads: Counts = None
    """Thread counts of earlier attempts, where they differ."""


class Record(Part):
    """What a job folder says of its run: its ``result.json`` (a ``Result``), or a record the
    reader made for a job without a readable one (``unreadable``, or ``failed`` for a job that
    crashed). Every part has a default, so a reader can ask ``metrics.test_acc`` of any record."""

    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema")
    """The schema's version; a file of schema 1 (or without one) is migrated when read."""
    status: JobStatus
    strategy: Text = None
    model: Text = None
    dataset: Text = None
    seed: Integer = None
    config: Object[dict[str, Any]] = {}
    """The resolved config, secrets masked (never interpolated when read)."""
    metrics: Object[Metrics] = Metrics()
    cost: Object[Cost] = Cost()
    history: Entries[Epoch] = []
    groups: Entries[Group] = []
    data: Object[Data] = Data()
    versions: Object[Versions] = Versions()
    runtime: Object[Runtime] = Runtime()
    predictions: Text = None
    """The file of per-example test predictions beside ``result.json``, if tested."""
    error: Text = None
    """Failed, diverged and unreadable records: the error in one line."""

    @model_validator(mode="wrap")
    @classmethod
    def _judged_metric_present(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Record:
        """A completed run holds the accuracy it is judged by (``judged_by``)."""
        record = handler(data)
        if record.status == "completed" and record.judged_value is None:
            raw = data.get("metrics") if isinstance(data, Mapping) else None
            value = raw.get(record.judged_by) if isinstance(raw, Mapping) else None
            raise PydanticCustomError("judged", "metrics.{metric} is {value}, not a number",
                                      {"metric": record.judged_by, "value": shown(value)})
        return record

    @property
    def judged_by(self) -> str:
        return judged_metric(self.config)

    @property
    def judged_value(self) -> float | None:
        """The accuracy the run is judged by; None where it has none."""
        return self.metrics.val_acc if self.judged_by == "val_acc" else self.metrics.test_acc

    def config_at(self, *keys: str) -> Any:
        """``config[k1][k2]...``, or None where the config has no such entry."""
        value: Any = self.config
        for key in keys:
            if not isinstance(value, Mapping) or key not in value:
                return None
            value = value[key]
        return value

    def to_data(self) -> dict[str, Any]:
        """As ``result.json`` holds it: the fields that were given, by their names in the file."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Result(Record):
    """``result.json``: a completed, pruned, failed or diverged run."""

    model_config = ConfigDict(title="ftbench result.json", json_schema_extra={
        "description": "What one ftbench run recorded (see README, 'Where results go')."})

    status: Status


def judged_by(data: Mapping[str, Any]) -> str:
    """``judged_metric`` of a record given as plain data."""
    return judged_metric(data.get("config"))


def judged_metric(config: object) -> str:
    """The metric a completed record must hold: ``test_acc``, or ``val_acc`` for a run that was
    never tested (a search trial of the tuned comparison is judged on validation only)."""
    config = config if isinstance(config, Mapping) else {}
    run, tune = config.get("run"), config.get("tune")
    tested = run.get("test", True) if isinstance(run, Mapping) else True
    if not tested or (isinstance(tune, Mapping) and tune.get("phase") == "search"):
        return "val_acc"
    return "test_acc"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``result.json`` (draft 2020-12), as ``result.schema.json`` holds it."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$comment": f"ftbench result schema {SCHEMA_VERSION}", **Result.model_json_schema()}

