"""The result schema: published as it is declared, met by a real run, read from schema 1, and a
renamed field is an error for the writer and the report, never an empty column."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
from pydantic import ValidationError, create_model

from ftbench.report import write_report
from ftbench.report.collect import Run, collect
from ftbench.run import result as result_module
from ftbench.run import schema
from ftbench.run.atomic import write_json
from ftbench.run.migrate import migrate
from ftbench.run.result import RESULT_FILE, build_result, job_record, read_result
from tests.helpers import FAST, make_cfg


def test_the_published_json_schema_is_the_models_and_the_command_prints_it():
    published = files("ftbench").joinpath("run/result.schema.json").read_text()
    assert json.loads(published) == schema.json_schema(), \
        "regenerate with: python -m ftbench.schema > src/ftbench/run/result.schema.json"
    printed = subprocess.run([sys.executable, "-m", "ftbench.schema"], capture_output=True, text=True,
                             check=True).stdout
    assert printed == published
    declared = json.loads(published)
    assert declared["additionalProperties"] is False and declared["required"] == ["status"]
    cost = declared["$defs"]["Cost"]["properties"]
    assert {"train_flops", "eval_flops", "drift", "feature_cache", "shift_eval_seconds"} <= set(cost)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    from ftbench.train import fit

    run_dir = tmp_path_factory.mktemp("fitted")
    fit(make_cfg(*FAST, "strategy=gradual", run_dir=run_dir), run_dir)
    return run_dir


def test_a_real_run_writes_every_cost_figure_as_a_declared_field(fitted):
    raw = json.loads((fitted / RESULT_FILE).read_text())
    assert raw["schema"] == schema.SCHEMA_VERSION == 2
    result = read_result(fitted)  # validated against the schema: no undeclared field anywhere
    assert isinstance(result, schema.Result) and result.status == "completed"
    assert set(raw["cost"]) == set(schema.Cost.model_fields)  # every figure Meter.cost writes, and no other
    assert result.cost.train_flops > 0 and result.cost.feature_cache.used is True
    assert result.metrics.test_acc == raw["metrics"]["test_acc"] and result.history[-1].epoch == 1
    assert result.to_data() == raw  # the file is what the model holds


def _previous_schema(acc: float, seed: int) -> dict:
    """A result as schema 1 wrote it: no status required, and fields schema 2 does not declare."""
    return {"schema": 1, "strategy": "full", "model": "tiny", "dataset": "digits", "seed": seed,
            "metrics": {"val_acc": acc, "test_acc": acc, "old_metric": 1.0},
            "cost": {"train_flops": 1e9, "train_seconds": 2.0, "legacy_figure": 3},
            "history": [{"epoch": 0, "val_acc": acc, "note": "gone in schema 2"}],
            "config": {"seed": seed, "strategy": {"name": "full"}, "run": {"test": True}},
            "host": "somewhere"}


def test_a_previous_schema_result_is_migrated_and_reported(tmp_path):
    migrated = migrate(_previous_schema(0.8, 0))
    assert migrated["schema"] == 2 and migrated["status"] == "completed"
    assert "host" not in migrated and "legacy_figure" not in migrated["cost"]
    assert "note" not in migrated["history"][0]
    assert migrate({"schema": 1, "error": "boom"})["status"] == "failed"

    for seed, acc in enumerate((0.8, 0.84)):
        write_json(tmp_path / f"old{seed}" / RESULT_FILE, _previous_schema(acc, seed))
    result = read_result(tmp_path / "old0")
    assert result.schema_version == 2 and result.cost.train_flops == 1e9 and result.metrics.test_acc == 0.8
    runs = collect(tmp_path)
    assert [run.result.metrics.test_acc for run in runs] == [0.8, 0.84] and all(r.completed for r in runs)
    write_report(tmp_path)
    assert "| full |" in (tmp_path / "report.md").read_text()


def test_a_run_folder_of_the_previous_release_is_reported_as_interrupted(tmp_path):
    """tests/data/run_before_layout: a checkpoint and a saved config, no result.json."""
    run_dir = tmp_path / "sweep" / "old"
    shutil.copytree(Path(__file__).parents[1] / "data" / "run_before_layout", run_dir)
    record = job_record(run_dir)
    assert record.status == "failed" and "interrupted after a checkpoint" in record.error
    assert record.strategy == "gradual" and record.seed == 0 and record.config_at("model", "name")
    (run,) = collect(tmp_path / "sweep")
    assert run.result.status == "failed" and run.result.strategy == "gradual"


def test_the_typed_record_and_the_plain_data_of_a_run_agree():
    run = Run({"status": "completed", "strategy": "full", "metrics": {"test_acc": 0.9, "val_acc": 0.8},
               "cost": {"train_flops": "4e9"}, "config": {"tune": {"phase": "search"}}})
    assert run.result.metrics.test_acc == run.data["metrics"]["test_acc"] == 0.9
    assert run.result.cost.train_flops is None  # a figure that is no number counts as absent
    assert run.result.judged_by == "val_acc" and run.completed
    assert run.result.config_at("tune", "phase") == "search" and run.result.config_at("tune", "x") is None


def test_the_writer_refuses_what_the_schema_does_not_declare():
    with pytest.raises(ValidationError, match="not_a_figure"):
        build_result(None, metrics={"test_acc": 0.5}, cost={"not_a_figure": 1.0})
    with pytest.raises(ValidationError, match="train_flops"):
        build_result(None, metrics={"test_acc": 0.5}, cost={"train_flops": "many"})
    written = build_result(None, metrics={"test_acc": float("nan"), "val_acc": 0.5},
                           status="pruned")  # NaN is no JSON: written as null
    assert written.metrics.test_acc is None


def test_a_part_built_by_keyword_is_written_and_one_validated_from_data_is_read():
    """Writers build parts by keyword: a wrong value raises; the readers' ``model_validate``
    (never the writer's ``__init__``) reads the same value as absent."""
    with pytest.raises(ValidationError, match="not a number"):
        schema.Cost(train_flops="many")
    with pytest.raises(ValidationError, match="not a list of names"):
        schema.Epoch(trainable_groups="head")
    assert schema.Cost.model_validate({"train_flops": "many"}).train_flops is None
    read = schema.Result.model_validate({"status": "pruned", "cost": {"train_flops": "many"}})
    assert read.cost.train_flops is None
    assert schema.Metrics(test_acc=float("nan")).test_acc is None  # NaN is no JSON: written as null
    cost = schema.Cost(train_flops=1.0).merged(schema.Cost(wall_seconds=2.0))
    assert cost.model_dump(exclude_unset=True) == {"wall_seconds": 2.0, "train_flops": 1.0}


# -- done when: a field renamed in a copy of the schema fails the writer and the report loudly ---
@pytest.fixture
def renamed(monkeypatch):
    """The schema with ``cost.train_flops`` renamed to ``cost.training_flops``."""
    fields = {name: (info.annotation, info) for name, info in schema.Cost.model_fields.items()}
    fields["training_flops"] = fields.pop("train_flops")
    cost = create_model("Cost", __base__=schema.Part, **fields)
    result = create_model("Result", __base__=schema.Result, cost=(cost, cost()))
    record = create_model("Record", __base__=schema.Record, cost=(cost, cost()))
    monkeypatch.setattr(result_module, "Result", result)
    monkeypatch.setattr("ftbench.run.migrate.Result", result)
    monkeypatch.setattr(importlib.import_module("ftbench.report.collect"), "Record", record)
    return result


def test_a_renamed_field_fails_the_writer_and_the_report_loudly(tmp_path, fitted, renamed):
    raw = json.loads((fitted / RESULT_FILE).read_text())
    # the writer: the cost a real run measured, its figure under the old name, is refused
    # before anything is written
    with pytest.raises(ValidationError, match=r"cost\.train_flops"):
        build_result(None, metrics=raw["metrics"], cost=raw["cost"])

    # the report: a result holding the old name is listed as unreadable, with the field named
    write_json(tmp_path / "job0" / RESULT_FILE, raw)
    (run,) = collect(tmp_path)
    assert run.status == "unreadable"
    assert run.result.error == "unreadable result.json: cost.train_flops is not a field of result schema 2"
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "cost.train_flops is not a field of result schema 2 | job0 |" in md
    # a reader asking for the old name of a record under the renamed schema: an error, not None
    with pytest.raises(AttributeError):
        renamed.model_validate({**raw, "cost": {}}).cost.train_flops  # noqa: B018
