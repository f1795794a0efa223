"""``python -m ftbench.train``: prepare the run, fine-tune, test, write the result.

Read top to bottom, this file is the whole story of a run:

1. ``main`` -> Hydra composes the config; ``PrepareRun`` (a Hydra callback, before Hydra
   writes anything) makes a single run's refusals, so a refused single run leaves nothing behind.
2. ``run`` (the Hydra task) -> ``run_job``: the prepared run (``prepare``), the callbacks the config
   asks for (``callbacks:``), a failure ending a single run in one line or recorded in a multirun.
3. ``fit``: data + backbone + strategy plan -> module -> ``Trainer.fit`` / ``test`` (+ the
   shifted test sets) -> ``result.json``, ``predictions.npz``, ``model.safetensors``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback as HydraCallback
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning import Callback, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from ftbench.config import CONFIG_DIR, CONFIG_NAME, eval_shifts, register_resolvers, validate_config
from ftbench.cost.estimate import RunPreview
from ftbench.cost.meter import Meter
from ftbench.data import FineTuneDataModule
from ftbench.finetune.divergence import DivergenceGuard
from ftbench.finetune.features import FeatureCache
from ftbench.finetune.module import FineTuneModule
from ftbench.finetune.observed import RunStopper
from ftbench.finetune.shifted import ShiftEvaluation
from ftbench.finetune.strategies import build_plan
from ftbench.finetune.trainer import build_trainer
from ftbench.models.adapters import add_adapters
from ftbench.models.backbone import create_backbone, group_param_count, layer_groups
from ftbench.report.callback import write_report_quietly
from ftbench.run.atomic import save_weights
from ftbench.run.checkpoints import LAST_CHECKPOINT, Resumable, SafeCheckpointIO
from ftbench.run.failures import UserError, exit_for, one_line_errors, run_guarded
from ftbench.run.folder import check_new_run, is_rank_zero, lock, release, release_all, undo_refused
from ftbench.run.outputs import run_outputs
from ftbench.run.predictions import write_predictions
from ftbench.run.redaction import install_log_redaction, redact_saved_configs, remember
from ftbench.run.result import PREDICTIONS_FILE, RESULT_FILE, WEIGHTS_FILE, build_result, write_result
from ftbench.run.resume import check_checkpoint_fits, config_digest, resume_target
from ftbench.run.reuse import finished_result, holds_finished
from ftbench.run.schema import Cost, Group, Metrics
from ftbench.run.secret_overrides import override_secrets
from ftbench.run.threads import AUTO, KeepThreads, apply_threads, available_cores, launcher_jobs
from ftbench.tracking.loggers import build_logger, publish_result
from ftbench.tracking.progress import progress_bar

log = logging.getLogger("ftbench")


def fit(cfg: DictConfig, run_dir: Path, ckpt_path: Path | None = None,
        callbacks: Sequence[Callback] = (), *, stoppers: Sequence[RunStopper] = (), jobs: int = 1,
        sweep_dir: Path | None = None) -> dict:
    """Fine-tune once as the (validated) ``cfg`` says, continuing ``ckpt_path`` if given; write
    into ``run_dir``. ``callbacks`` join the run's own, and so do ``stoppers``, the first of
    which to name a status (a pruned search trial) gives the status of a run it stopped early.
    ``jobs``: the runs the launcher runs beside this one (``launcher_jobs``), which share the cores;
    ``sweep_dir``: the multirun's folder if this run is one of its jobs."""
    started = time.perf_counter()
    keep = run_outputs(cfg)
    threads = KeepThreads(cfg.trainer.get("threads", AUTO), jobs)  # the run's share of the cores
    threads.share = apply_threads(threads.setting, jobs)
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
    datamodule.resolve_for(model)  # the input size and normalisation of this backbone
    groups = layer_groups(model)
    plan = build_plan(cfg.strategy, [g.name for g in groups], cfg.trainer.max_epochs)
    module = FineTuneModule(model, groups, plan, cfg.optimizer, datamodule.num_classes,
                            label_smoothing=cfg.model.label_smoothing,
                            channels_last=cfg.model.channels_last)

    # Head-only epochs train on cached features of the deterministic transform (finetune/features.py)
    cached = bool(cfg.data.cache_features) and plan.head_only_through(0)
    cache = FeatureCache(plan, store_dir=cfg.data.feature_store) if cached else None
    meter = Meter()
    shifted = ShiftEvaluation(eval_shifts(cfg), cache)  # when the test ends: the shifted test sets
    own = [threads, RunPreview(cache is not None, threads), meter, DivergenceGuard(), *callbacks,
           *stoppers, *progress_bar(cfg, multirun=sweep_dir is not None)]
    if keep.checkpoint:
        # last.ckpt after every epoch, written after every other callback's epoch end so that
        # it holds the whole epoch (save_last alone only saves alongside a top-k checkpoint)
        own += [ModelCheckpoint(dirpath=run_dir, filename=Path(LAST_CHECKPOINT).stem, save_top_k=1,
                                save_on_train_epoch_end=True, enable_version_counter=False),
                Resumable(run_dir, config)]
    own += [c for c in (cache, shifted) if c is not None]
    trainer = build_trainer(cfg, callbacks=own, logger=build_logger(cfg, resume_step, sweep_dir),
                            default_root_dir=str(run_dir), plugins=[SafeCheckpointIO()],
                            enable_checkpointing=keep.checkpoint)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    tested = trainer.test(module, datamodule=datamodule, verbose=False)[0] if keep.test else {}
    merge_adapters()  # from here on a plain timm model: its cost, groups and saved weights

    tested_examples = module.test_predictions() if keep.test else None  # a collective: every rank
    predictions = {"test": tested_examples, **shifted.predictions} if tested_examples else {}
    result = build_result(
        cfg,
        status=next((s.run_status for s in stoppers if s.run_status), "completed"),
        metrics=Metrics(val_acc=meter.history[-1].val_acc if meter.history else None,
                        test_acc=tested.get("test_acc"), test_loss=tested.get("test_loss"),
                        epochs=trainer.current_epoch).merged(module.test_classes(datamodule.classes)),
        cost=meter.cost(trainer, module, cache.summary() if cache else None).merged(
            Cost(wall_seconds=time.perf_counter() - started)),  # the whole job: data, fit, test
        history=meter.history,
        groups=[Group(name=g.name, params=group_param_count(model, g)) for g in layer_groups(model)],
        data=datamodule.record(),
        shift=shifted.summary(),
        predictions=PREDICTIONS_FILE if predictions else None,
        runtime=threads.record(),
    )
    if trainer.is_global_zero:
        if keep.weights:
            save_weights(run_dir / WEIGHTS_FILE, model)
        if predictions:
            write_predictions(run_dir / PREDICTIONS_FILE, predictions)
        write_result(run_dir, result)
    record = result.to_data()  # what result.json holds (ftbench.run.schema.Result)
    publish_result(trainer, record)
    return record


# -- the lifecycle around fit ------------------------------------------------------------------
@dataclass
class Prepared:
    """A run ready to start: its validated config, the checkpoint it continues if any, and for a
    multirun's job done before, the finished result its folder holds (``reused``)."""

    cfg: DictConfig
    ckpt_path: Path | None = None
    reused: dict | None = None


def prepare(cfg: DictConfig, run_dir: Path, multirun: bool, overrides: Sequence[str],
            composed: DictConfig | None = None) -> Prepared:
    """Resolve ``resume=``, validate the config, check and lock the run folder. A single run calls
    it twice: ``PrepareRun``, before Hydra writes the folder (a refusal leaves nothing), then its
    job, for the result; the lock is held in between (taking it again is a no-op). ``composed``:
    Hydra's whole config, for the ``${hydra:...}`` values before its job (``with_hydra_values``)."""
    cfg, ckpt_path = resume_target(cfg, list(overrides), multirun)
    first = is_rank_zero()  # DDP's other ranks share rank zero's folder
    if first and not multirun and ckpt_path is None:
        check_new_run(run_dir)  # first: whatever the values, the run it would overwrite
    validate_config(cfg, composed)
    if first:
        lock(run_dir, "resume" if ckpt_path else "hydra.sweep.dir" if multirun else "hydra.run.dir")
        if multirun and ckpt_path is None:  # a sweep repeated into its folder: its finished jobs stand
            return Prepared(cfg, None, finished_result(run_dir, cfg))
    return Prepared(cfg, ckpt_path)


class PrepareRun(HydraCallback):
    """Hydra callback: a single run's refusals, before Hydra creates its folder or saves into it
    (the lock it takes is released as the job ends, or by ``main``); a multirun's sweep folder."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(os.path.abspath(config.hydra.run.dir))
        as_job = OmegaConf.merge(config, {"hydra": {"runtime": {"output_dir": str(run_dir)}}})
        task = OmegaConf.masked_copy(config, [str(key) for key in config if key != "hydra"])
        overrides = cast(list[str], OmegaConf.to_container(config.hydra.overrides.task))  # unresolved
        try:
            prepare(task, run_dir, False, overrides, cast(DictConfig, as_job))
        except UserError as err:  # Hydra would turn a callback's exception into a warning
            exit_for(err)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            if config.get("resume"):
                raise UserError(f"resume={config.resume!r} continues one run; allowed: without -m")
            # the tuned comparison's workers share their sweep folder on purpose: its Optuna
            # storage hands each job to one of them (each job folder is locked)
            if not config.hydra.sweeper.get("shares_sweep_dir", False):
                lock(config.hydra.sweep.dir, "hydra.sweep.dir")
        except UserError as err:
            exit_for(err)


@hydra.main(config_path=CONFIG_DIR, config_name=CONFIG_NAME, version_base="1.3")
def run(cfg: DictConfig) -> float | None:
    _quiet_third_party()
    hydra_cfg = HydraConfig.get()  # read here only: the rest of the run takes it as arguments
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweep_dir = Path(hydra_cfg.sweep.dir) if hydra_cfg.mode == RunMode.MULTIRUN else None
    overrides = cast(list[str], OmegaConf.to_container(hydra_cfg.overrides.task))  # as typed, unresolved
    keep_secrets(overrides)  # again: a launcher's worker process has its own logging
    if hydra_cfg.output_subdir is not None:
        redact_saved_configs(run_dir / hydra_cfg.output_subdir)
    if sweep_dir is not None:
        redact_saved_configs(sweep_dir, "multirun.yaml")
    try:
        return run_job(cfg, run_dir, overrides, sweep_dir, hydra_cfg.launcher)
    except SIGTERMException:  # only a multirun's job gets here: report the jobs that finished
        write_report_quietly(Path(hydra_cfg.sweep.dir))
        raise
    finally:
        release(run_dir)


def run_job(cfg: DictConfig, run_dir: Path, overrides: Sequence[str], sweep_dir: Path | None = None,
            launcher: DictConfig | None = None) -> float | None:
    """Fit the prepared run; a failure ends a single run with one line, and is recorded in a
    multirun (``sweep_dir`` given: a bad value is its job's failure, not the sweep's), whose
    ``launcher`` says how many jobs share the machine."""
    multirun = sweep_dir is not None
    job = Prepared(cfg)

    def attempt() -> dict:
        nonlocal job
        job = prepare(cfg, run_dir, multirun, overrides)
        if job.reused is not None:
            return job.reused
        callbacks = [instantiate(c) for c in (job.cfg.get("callbacks") or {}).values()]
        stoppers = [c for c in callbacks if isinstance(c, RunStopper)]
        batch = job.cfg.tune.batch if job.cfg.get("tune") and job.cfg.tune.get("phase") else None
        jobs = launcher_jobs(launcher, batch, available_cores()) if multirun else 1  # a search: batches
        try:
            return fit(job.cfg, run_dir, job.ckpt_path, [c for c in callbacks if c not in stoppers],
                       stoppers=stoppers, jobs=jobs, sweep_dir=sweep_dir)
        except UserError:  # found while reading the data or weights: the config could not tell
            if not multirun:
                undo_refused(run_dir)
            raise

    def record(error: BaseException, status: str) -> None:
        if holds_finished(run_dir):  # a failure never replaces a finished result
            return log.error("%s keeps its finished %s: this failure is not recorded", run_dir, RESULT_FILE)
        write_result(run_dir, build_result(job.cfg, status=status, error=error))

    result = run_guarded(attempt, record, run_dir, multirun)
    if result is None:
        return None
    if job.reused is not None:  # its record as it was: only a completed one has every metric
        log.info("%s: reused, %s before -> %s", result.get("strategy"), result["status"], run_dir)
        return (result.get("metrics") or {}).get("val_acc")
    metric = "test_acc" if result["metrics"]["test_acc"] is not None else "val_acc"
    log.info("%s: %s %s=%.4f train_seconds=%.1f -> %s", result["strategy"], result["status"], metric,
             result["metrics"][metric] or 0.0, result["cost"]["train_seconds"], run_dir)
    return result["metrics"]["val_acc"]  # the value a Hydra sweeper optimises


def _quiet_third_party() -> None:
    # Lightning's tips (workers, logging interval, tensor cores) are noise for a benchmark run.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*number of training batches.*")
    warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode.*")  # frozen groups, on purpose
    warnings.filterwarnings("ignore", ".*LeafSpec.*")  # below: last.ckpt beside Hydra's files, on purpose
    warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
    # device summary, tips and "loading train_dataloader" lines, printed for every job
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    os.environ.setdefault("TQDM_MININTERVAL", "1")


def keep_secrets(overrides: Sequence[str]) -> None:
    """Mask the secrets of ``overrides`` and environment in every log line from now, Hydra's too."""
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
