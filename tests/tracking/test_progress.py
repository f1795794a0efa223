"""Progress lines: per job of a multirun (count, elapsed, time left), per epoch, and the cost
a run announces before it trains."""

from __future__ import annotations

import json
import logging
import re
import sys
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ftbench.config import CONFIG_DIR
from ftbench.cost.estimate import limited, upscaling_note
from ftbench.tracking.progress import SweepProgress, sweep_plan
from ftbench.tracking.units import duration, si
from ftbench.train import main
from tests.helpers import FAST, image_folder


def hydra_cfg(*overrides: str, task: tuple[str, ...] = ()):
    """The config with its hydra node; ``task``: the command line's sweep overrides."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    return OmegaConf.merge(cfg, {"hydra": {"overrides": {"task": list(task)}}})


def test_durations_read_as_clock_times():
    assert [duration(s) for s in (7, 65, 3723, -1)] == ["0:07", "1:05", "1:02:03", "0:00"]


def test_amounts_read_with_three_digits_and_an_si_prefix():
    assert [si(v, "FLOP") for v in (4.58e6, 1.234e12, 999, 0)] == [
        "4.58 MFLOP", "1.23 TFLOP", "999 FLOP", "0 FLOP"]
    assert si(2.5e16) == "25 P" and si(None) == "n/a"


def test_the_sweep_plan_counts_the_jobs_the_basic_sweeper_launches():
    assert sweep_plan(hydra_cfg("experiment=compare")) == (27, ["strategy", "seed"])
    # the command line replaces a swept key of the experiment, and adds its own
    cfg = hydra_cfg("experiment=compare", task=("seed=0,1", "strategy.lr=0.1,0.2", "model.drop_rate=0.1"))
    assert sweep_plan(cfg) == (9 * 2 * 2, ["strategy", "seed", "strategy.lr"])


def job_config(sweep_dir, num: int, *task: str):
    return OmegaConf.create({"hydra": {"mode": "MULTIRUN", "sweep": {"dir": str(sweep_dir)},
                                       "job": {"num": num}, "overrides": {"task": list(task)},
                                       "runtime": {"output_dir": str(sweep_dir / str(num))}}})


def test_an_override_is_known_by_its_key_without_add_or_delete_marks():
    from ftbench.run.overrides import override_key

    assert [override_key(a) for a in ("seed=1", "+a.b=2", "++logger.api_key=x=y", "~strategy")] == [
        "seed", "a.b", "logger.api_key", "strategy"]


def test_job_lines_count_jobs_by_their_records_and_estimate_the_time_left(tmp_path, caplog, monkeypatch):
    from hydra.types import RunMode

    clock = [1000.0]
    monkeypatch.setattr("ftbench.tracking.progress.time.time", lambda: clock[0])
    caplog.set_level(logging.INFO, logger="ftbench")
    progress = SweepProgress()
    progress.on_multirun_start(hydra_cfg("experiment=compare", task=("seed=0,1",)))
    assert progress.total == 18 and progress.swept == ["strategy", "seed"]
    assert caplog.records[0].getMessage().startswith("multirun: 18 jobs over strategy x seed into multirun/")
    caplog.clear()

    def run_job(num: int, seconds: float, status: str) -> None:
        config = job_config(tmp_path, num, "strategy=full", f"seed={num}", "trainer.max_epochs=2")
        config.hydra.mode = RunMode.MULTIRUN
        progress.on_job_start(config)
        clock[0] += seconds
        (tmp_path / str(num)).mkdir()
        record = {"status": status, "metrics": {"test_acc": 0.5}} if status == "completed" else \
            {"status": status, "error": "boom"}
        (tmp_path / str(num) / "result.json").write_text(json.dumps(record))
        progress.on_job_end(config, SimpleNamespace(status=None))

    run_job(0, 30, "completed")
    run_job(1, 30, "failed")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "job 1/18 (strategy=full seed=0) starts: 0 of 18 done, elapsed 0:00, time left unknown until "
        "a job has finished",
        "job 1/18 (strategy=full seed=0) completed in 0:30: 1 of 18 done, elapsed 0:30, about 8:30 left",
        "job 2/18 (strategy=full seed=1) starts: 1 of 18 done, elapsed 0:30, about 8:30 left",
        "job 2/18 (strategy=full seed=1) failed in 0:30: 2 of 18 done, elapsed 1:00, about 8:00 left"]


def test_a_single_run_prints_no_job_lines(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="ftbench")
    config = job_config(tmp_path, 0)
    config.hydra.mode = "RUN"
    SweepProgress().on_job_start(config)
    assert not caplog.records


def test_a_run_logs_its_cost_before_training_and_one_line_per_epoch(run_fit, caplog):
    caplog.set_level(logging.INFO, logger="ftbench")
    result, _ = run_fit("strategy=gradual", "trainer.enable_progress_bar=true", "progress=lines")
    lines = [r.getMessage() for r in caplog.records if r.name == "ftbench"]
    (preview,) = [line for line in lines if line.startswith("run: ")]
    # FAST: 3 batches of 64 per epoch, 2 epochs; the FLOPs of one 32 px image's forward, as
    # the run's own meter counted them on its evaluation batches
    assert preview.startswith("run: 192 images per epoch x 2 epochs at 3x32x32 px, ")
    flops = float(re.search(r"px, ([\d.]+) MFLOP per image", preview).group(1)) * 1e6
    assert flops == pytest.approx(result["cost"]["eval_flops_per_image"]["3x32x32"], rel=5e-3)
    assert re.search(r"; about \d+:\d\d on this machine", preview)
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == 2
    for k, (line, entry) in enumerate(zip(epochs, result["history"], strict=True)):
        assert line.startswith(f"epoch {k + 1}/2: train_loss {entry['train_loss']:.4f}, "
                               f"val_acc {entry['val_acc']:.4f}, ") and line.endswith(" s")


def test_small_images_upscaled_to_the_weights_size_are_announced(run_fit, tmp_path, caplog):
    root = image_folder(tmp_path / "imgs", per_class=10, size=(20, 20))
    overrides = ["dataset=imagefolder", f"dataset.root={root}", "strategy=linear_probe",
                 "trainer.max_epochs=1", "data.batch_size=4"]
    caplog.set_level(logging.INFO, logger="ftbench")
    run_fit(*overrides, "dataset.image_size=null")  # test_efficientnet's weights expect 160 px
    (note,) = [r.getMessage() for r in caplog.records if "upscaled" in r.getMessage()]
    assert "20x20 px" in note and "160x160" in note and "64x the pixels" in note
    assert "dataset.image_size=32" in note
    caplog.clear()
    run_fit(*overrides, "dataset.image_size=24")  # a size the user chose: nothing to say
    assert not [r for r in caplog.records if "upscaled" in r.getMessage()]


def test_upscaling_and_limits_arithmetic():
    assert upscaling_note((200, 180), (224, 224)) is None  # close to the weights' size
    assert "dataset.image_size=64" in upscaling_note((50, 40), (224, 224))
    assert limited(1000, 64, None) == 1000 and limited(1000, 64, 3) == 192
    assert limited(1000, 64, 0.5) == 512 and limited(100, 64, 1.0) == 100


@pytest.mark.slow
def test_a_multirun_prints_a_line_per_job_and_epoch_and_the_table_at_the_end(tmp_path, monkeypatch,
                                                                            capsys):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.setattr(sys, "argv", ["ftbench.train", "-m", f"hydra.sweep.dir={tmp_path}",
                                      "hydra.sweep.subdir=${hydra.job.num}", *FAST,
                                      "trainer.enable_progress_bar=true", "strategy=linear_probe,full"])
    main()
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "multirun: 2 jobs over strategy into" in out
    assert re.search(r"job 1/2 \(strategy=linear_probe\) starts: 0 of 2 done, elapsed \d+:\d\d, time "
                     r"left unknown", out)
    assert re.search(r"job 1/2 \(strategy=linear_probe\) completed in \d+:\d\d: 1 of 2 done, elapsed "
                     r"\d+:\d\d, about \d+:\d\d left", out)
    assert re.search(r"job 2/2 \(strategy=full\) completed in \d+:\d\d: 2 of 2 done", out)
    assert len(re.findall(r"epoch [12]/2: train_loss \d\.\d{4}, val_acc \d\.\d{4}, \d+\.\d s", out)) == 4
    assert "| linear_probe | 1 | 0 |" in out and "| full | 1 | 0 |" in out  # the table, printed
    assert f"report.md: {tmp_path / 'report.md'}" in out


def test_the_preview_leaves_the_run_as_it_would_be_without_it(run_fit, monkeypatch):
    # augmented images draw random numbers; the preview's forwards must not move the run's
    # draws, BatchNorm statistics or gradients
    overrides = ("strategy=full", "dataset.augment=true", "trainer.max_epochs=1")
    with_preview, _ = run_fit(*overrides)
    monkeypatch.setattr("ftbench.cost.estimate.RunPreview.on_fit_start", lambda *args: None)
    without, _ = run_fit(*overrides)
    assert with_preview["metrics"]["test_acc"] == without["metrics"]["test_acc"]
    assert with_preview["history"][0]["train_loss"] == without["history"][0]["train_loss"]


def test_the_time_estimate_counts_a_training_step_as_three_forwards_and_a_cached_probe_once():
    from ftbench.cost.estimate import RunPreview

    trainer = SimpleNamespace(current_epoch=0, max_epochs=3)
    lp_ft = SimpleNamespace(trainable_at=lambda epoch: (epoch >= 1, epoch >= 1, True))  # probe epoch 0
    probe = SimpleNamespace(trainable_at=lambda epoch: (False, False, True))
    # 100 training, 10 validation, 20 test images
    assert RunPreview._forwards(trainer, lp_ft, 100, 10, 20, cached=True) == 20 + 110 + 2 * 310
    assert RunPreview._forwards(trainer, lp_ft, 100, 10, 20, cached=False) == 20 + 110 + 2 * 310
    assert RunPreview._forwards(trainer, probe, 100, 10, 20, cached=True) == 20 + 110
    assert RunPreview._forwards(trainer, probe, 100, 10, 20, cached=False) == 20 + 3 * 110
