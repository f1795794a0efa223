"""``python -m ftbench.train``: compose the config, fine-tune, test, write the result.

Read top to bottom, this file is the whole story of a run:
config -> data + backbone + strategy plan -> module -> Trainer.fit/test (+ the shifted test
sets) -> result.json.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning import Callback, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from ftbench.adapters import add_adapters
from ftbench.backbone import create_backbone, group_param_count, layer_groups
from ftbench.checkpointing import LAST_CHECKPOINT, Resumable, SafeCheckpointIO
from ftbench.config import CONFIG_DIR, CONFIG_NAME, eval_shifts, register_resolvers, validate_config
from ftbench.data import FineTuneDataModule
from ftbench.data.features import FeatureCache
from ftbench.divergence import DivergenceGuard
from ftbench.failures import UserError, exit_for, one_line_errors, run_guarded
from ftbench.loggers import build_logger, publish_result
from ftbench.metering import Meter
from ftbench.module import FineTuneModule
from ftbench.preview import RunPreview
from ftbench.progress import progress_bar
from ftbench.redaction import (
    install_log_redaction,
    override_secrets,
    redact_saved_configs,
    remember,
)
from ftbench.report.callback import write_report_quietly
from ftbench.result import WEIGHTS_FILE, completed_result, failed_result, write_result
from ftbench.resume import check_checkpoint_fits, config_digest, resume_target
from ftbench.robustness import ShiftEvaluation
from ftbench.run_folder import discard_refused, is_rank_zero, lock, release, release_all
from ftbench.run_io import save_weights
from ftbench.strategies import build_plan
from ftbench.threads import KeepThreads, apply_threads
from ftbench.trainer import build_trainer

if TYPE_CHECKING:
    from ftbench.tune.trial import SearchTrial

log = logging.getLogger("ftbench")


def fit(cfg: DictConfig, run_dir: Path, ckpt_path: Path | None = None,
        extra_callbacks: Sequence[Callback] = (), search_trial: SearchTrial | None = None) -> dict:
    """Fine-tune once as ``cfg`` says (continuing ``ckpt_path`` if given); write into ``run_dir``.

    ``extra_callbacks`` join the run's own (a logger's, a test's). A ``search_trial`` (a trial
    of the tuned comparison's search) reports to Optuna, may be pruned, and is neither tested
    nor saved: the search looks at the validation split only.
    """
    validate_config(cfg)
    started = time.perf_counter()
    threads = KeepThreads(cfg)  # the run's share of the machine's cores, from here on
    threads.share = apply_threads(cfg)
    seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = FineTuneDataModule(cfg.dataset, batch_size=cfg.data.batch_size,
                                    num_workers=cfg.data.num_workers, pin_memory=cfg.data.pin_memory)
    model = create_backbone(cfg.model.name, datamodule.num_classes, weights=cfg.model.weights,
                            drop_rate=cfg.model.drop_rate)
    # LoRA's adapters, before the groups are computed (each joins its layer's group) and after
    # seeding (their initialisation is random); a no-op for strategies without adapters
    merge_adapters = add_adapters(model, cfg.strategy)
    config = config_digest(cfg)  # kept in every checkpoint; a resume checks it
    resume_step = None if ckpt_path is None else check_checkpoint_fits(ckpt_path, model, config)
    if cfg.model.compile:
        model.compile()  # in place: parameter names, layer groups and saved keys stay as they are
    datamodule.resolve_for(model)
    groups = layer_groups(model)
    plan = build_plan(cfg.strategy, [g.name for g in groups], cfg.trainer.max_epochs)
    module = FineTuneModule(model, groups, plan, cfg.optimizer, datamodule.num_classes,
                            label_smoothing=cfg.model.label_smoothing,
                            channels_last=cfg.model.channels_last)

    # Head-only epochs train on cached features of the deterministic transform, augmented
    # data or not (data/features.py)
    cached = bool(cfg.data.cache_features) and plan.head_only_through(0)
    meter = Meter()
    callbacks = [threads, RunPreview(cached, threads), meter, DivergenceGuard(), *extra_callbacks,
                 *progress_bar(cfg)]
    if search_trial:  # a search trial is never resumed: a dead worker's trial runs again whole
        callbacks.append(search_trial)
    else:
        # last.ckpt after every epoch, written after every other callback's epoch end so that
        # it holds the whole epoch (save_last alone only saves alongside a top-k checkpoint)
        callbacks += [ModelCheckpoint(dirpath=run_dir, filename=Path(LAST_CHECKPOINT).stem, save_top_k=1,
                                      save_on_train_epoch_end=True, enable_version_counter=False),
                      Resumable(run_dir, config)]
    cache = None
    if cached:
        cache = FeatureCache(store_dir=cfg.data.feature_store)
        callbacks.append(cache)
    shifted = ShiftEvaluation(eval_shifts(cfg), cache)  # when the test ends: the shifted test sets
    callbacks.append(shifted)
    trainer = build_trainer(cfg, callbacks=callbacks, logger=build_logger(cfg, resume_step),
                            default_root_dir=str(run_dir), plugins=[SafeCheckpointIO()],
                            enable_checkpointing=not search_trial)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    tested = {} if search_trial else trainer.test(module, datamodule=datamodule, verbose=False)[0]
    merge_adapters()  # from here on a plain timm model: its cost, groups and saved weights

    result = completed_result(
        cfg,
        status=search_trial.status if search_trial else "completed",
        metrics={"val_acc": meter.history[-1]["val_acc"] if meter.history else None,
                 "test_acc": tested.get("test_acc"), "test_loss": tested.get("test_loss"),
                 "epochs": trainer.current_epoch, **module.test_classes(datamodule.classes)},
        cost={**meter.cost(trainer, module, cache.summary() if cache else None),
              "wall_seconds": time.perf_counter() - started},  # the whole job: data, fit, test
        history=meter.history,
        groups=[{"name": g.name, "params": group_param_count(model, g)} for g in layer_groups(model)],
        data={"num_classes": datamodule.num_classes, "classes": datamodule.classes,
              **{f"{split}_size": len(datamodule.datasets[split]) for split in ("train", "val", "test")},
              "augmented": datamodule.augmented,
              "input_size": list(datamodule.data_config["input_size"])},
        shift=shifted.summary(),
        runtime=threads.record(),
    )
    if trainer.is_global_zero:
        if not search_trial:
            save_weights(run_dir / WEIGHTS_FILE, model)
        write_result(run_dir, result)
    publish_result(trainer, result)
    return result


def _quiet_third_party() -> None:
    # Lightning's tips (workers, logging interval, tensor cores) are noise for a benchmark run.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*number of training batches.*")
    warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode.*")  # frozen groups, on purpose
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    # last.ckpt lives in the run folder, next to Hydra's files: not a stale checkpoint folder
    warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
    # device summary, tips and "loading train_dataloader" lines, printed for every job
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    os.environ.setdefault("TQDM_MININTERVAL", "1")


@hydra.main(config_path=CONFIG_DIR, config_name=CONFIG_NAME, version_base="1.3")
def run(cfg: DictConfig) -> float | None:
    _quiet_third_party()
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    keep_secrets(hydra_cfg.overrides.task)  # again: a launcher's worker process has its own logging
    if hydra_cfg.output_subdir is not None:
        redact_saved_configs(run_dir / hydra_cfg.output_subdir)
    if multirun:
        redact_saved_configs(Path(hydra_cfg.sweep.dir), "multirun.yaml")
    try:
        if is_rank_zero():  # a single run's folder is locked already (RunFolderGuard)
            lock(run_dir, "hydra.sweep.dir" if multirun else "hydra.run.dir")
        cfg, ckpt_path = resume_target(cfg, hydra_cfg.overrides.task, multirun)
    except UserError as err:
        exit_for(err)
    try:
        return run_job(cfg, run_dir, ckpt_path, multirun)
    except SIGTERMException:  # only a multirun's job gets here: report the jobs that finished
        write_report_quietly(Path(hydra_cfg.sweep.dir))
        raise
    finally:
        release(run_dir)


def run_job(cfg: DictConfig, run_dir: Path, ckpt_path: Path | None, multirun: bool) -> float | None:
    """Fit; a failure ends a single run with one line and is recorded in a multirun."""

    def job() -> dict:
        try:
            trial = None
            if cfg.tune.phase == "search":
                from ftbench.tune.trial import search_trial  # optuna only where a search runs

                trial = search_trial(cfg)
            return fit(cfg, run_dir, ckpt_path, search_trial=trial)
        except UserError:
            if not multirun:
                discard_refused(run_dir)  # a refused single run leaves no run behind
            raise

    def record(error: BaseException, status: str) -> None:
        write_result(run_dir, failed_result(cfg, error, status))

    result = run_guarded(job, record, run_dir, multirun)
    if result is None:
        return None
    metric = "test_acc" if result["metrics"]["test_acc"] is not None else "val_acc"
    log.info("%s: %s %s=%.4f train_seconds=%.1f -> %s", result["strategy"], result["status"], metric,
             result["metrics"][metric] or 0.0, result["cost"]["train_seconds"], run_dir)
    return result["metrics"]["val_acc"]  # the value a Hydra sweeper optimises


def keep_secrets(overrides: Sequence[str]) -> None:
    """Mask the secrets ``overrides`` give (and secret environment variables) in every log
    line from now on, Hydra's own included."""
    remember(override_secrets(overrides))
    install_log_redaction()


def main() -> object:
    register_resolvers()
    keep_secrets(sys.argv[1:])  # before Hydra logs a multirun's jobs with their overrides
    try:
        return one_line_errors(run)()
    finally:
        release_all()  # the process ends here, or a test calls main again


if __name__ == "__main__":
    main()
