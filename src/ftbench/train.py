"""``python -m ftbench.train``: compose the config, fine-tune, test, write the result.

Read top to bottom, this file is the whole story of a run:
config -> data + backbone + strategy plan -> module -> Trainer.fit/test -> result.json.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from ftbench.adapters import add_adapters
from ftbench.backbone import create_backbone, group_param_count, layer_groups
from ftbench.checkpointing import LAST_CHECKPOINT, Resumable, SafeCheckpointIO
from ftbench.config import CONFIG_DIR, CONFIG_NAME, register_resolvers, validate_config
from ftbench.data import FineTuneDataModule
from ftbench.data.features import FeatureCache
from ftbench.divergence import DivergenceGuard
from ftbench.failures import UserError, exit_for, one_line_errors, run_guarded
from ftbench.loggers import build_logger, publish_result
from ftbench.metering import Meter
from ftbench.module import FineTuneModule
from ftbench.redaction import redact_logs, redact_saved_configs
from ftbench.result import WEIGHTS_FILE, completed_result, failed_result, write_result
from ftbench.resume import check_checkpoint_fits, resume_target
from ftbench.run_io import save_weights
from ftbench.strategies import build_plan

log = logging.getLogger("ftbench")


def fit(cfg: DictConfig, run_dir: Path, ckpt_path: Path | None = None,
        extra_callbacks: Sequence[Callback] = ()) -> dict:
    """Fine-tune once as ``cfg`` says (continuing ``ckpt_path`` if given); write into ``run_dir``.

    ``extra_callbacks`` join the run's own (a logger's, a test's).
    """
    validate_config(cfg)
    seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = FineTuneDataModule(cfg.dataset, batch_size=cfg.data.batch_size,
                                    num_workers=cfg.data.num_workers, pin_memory=cfg.data.pin_memory)
    model = create_backbone(cfg.model.name, datamodule.num_classes, weights=cfg.model.weights,
                            drop_rate=cfg.model.drop_rate)
    # LoRA's adapters, before the groups are computed (each joins its layer's group) and after
    # seeding (their initialisation is random); a no-op for strategies without adapters
    merge_adapters = add_adapters(model, cfg.strategy)
    resume_step = None if ckpt_path is None else check_checkpoint_fits(ckpt_path, model)
    if cfg.model.compile:
        model.compile()  # in place: parameter names, layer groups and saved keys stay as they are
    datamodule.resolve_for(model)
    groups = layer_groups(model)
    plan = build_plan(cfg.strategy, [g.name for g in groups], cfg.trainer.max_epochs)
    module = FineTuneModule(model, groups, plan, cfg.optimizer, datamodule.num_classes,
                            label_smoothing=cfg.model.label_smoothing,
                            channels_last=cfg.model.channels_last)

    meter = Meter()
    # last.ckpt after every epoch, written after every other callback's epoch end so that
    # it holds the whole epoch (save_last alone only saves alongside a top-k checkpoint)
    checkpoint = ModelCheckpoint(dirpath=run_dir, filename=Path(LAST_CHECKPOINT).stem, save_top_k=1,
                                 save_on_train_epoch_end=True, enable_version_counter=False)
    callbacks = [meter, checkpoint, Resumable(run_dir), DivergenceGuard(), *extra_callbacks]
    cache = None
    if cfg.data.cache_features and not datamodule.augmented and plan.head_only_through(0):
        cache = FeatureCache(store_dir=cfg.data.feature_store)
        callbacks.append(cache)
    trainer: Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=build_logger(cfg, resume_step),
        default_root_dir=str(run_dir), plugins=[SafeCheckpointIO()],
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    tested = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    merge_adapters()  # from here on a plain timm model: its cost, groups and saved weights

    result = completed_result(
        cfg,
        metrics={"val_acc": meter.history[-1]["val_acc"] if meter.history else None,
                 "test_acc": tested["test_acc"], "test_loss": tested["test_loss"],
                 "epochs": trainer.current_epoch},
        cost=meter.cost(trainer, module, cache.summary() if cache else None),
        history=meter.history,
        groups=[{"name": g.name, "params": group_param_count(model, g)} for g in layer_groups(model)],
        data={"num_classes": datamodule.num_classes,
              **{f"{split}_size": len(datamodule.datasets[split]) for split in ("train", "val", "test")},
              "augmented": datamodule.augmented,
              "input_size": list(datamodule.data_config["input_size"])},
    )
    if trainer.is_global_zero:
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
    redact_logs()
    if hydra_cfg.output_subdir is not None:
        redact_saved_configs(run_dir / hydra_cfg.output_subdir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        cfg, ckpt_path = resume_target(cfg, hydra_cfg.overrides.task, multirun)
    except UserError as err:
        exit_for(err)

    def record(error: BaseException, status: str) -> None:
        write_result(run_dir, failed_result(cfg, error, status))

    result = run_guarded(lambda: fit(cfg, run_dir, ckpt_path), record, run_dir, multirun)
    if result is None:
        return None
    log.info("%s: test_acc=%.4f train_seconds=%.1f -> %s", result["strategy"],
             result["metrics"]["test_acc"], result["cost"]["train_seconds"], run_dir)
    return result["metrics"]["val_acc"]  # the value a Hydra sweeper optimises


def main() -> object:
    register_resolvers()
    return one_line_errors(run)()


if __name__ == "__main__":
    main()
