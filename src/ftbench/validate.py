"""Check a composed config before any heavy work: one clear line per mistake.

Every check here is cheap (no data is read, no weights are loaded): the layer groups that
``strategy.trainable_groups`` counts come from the architecture built on PyTorch's ``meta``
device, which allocates nothing. Checks that need the data (folders, images, number of
classes) or the weights file run where those are read, and raise the same ``UserError``.
"""

from __future__ import annotations

from functools import cache

import timm
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from ftbench.backbone import check_model_name, check_weight_source, layer_groups
from ftbench.datasets import BAD_IMAGE_POLICIES, SOURCES
from ftbench.errors import UserError, choice_error, integer, number
from ftbench.optim import OPTIMIZERS, SCHEDULES
from ftbench.strategies import build_plan


def validate_config(cfg: DictConfig) -> None:
    """Raise ``UserError`` for the first bad value in ``cfg``; return quietly when all is well."""
    check_resolvable(cfg)
    check_names(cfg)
    check_numbers(cfg)
    build_plan(cfg.strategy, count_groups(cfg.model.name), cfg.trainer.max_epochs)


def check_resolvable(cfg: DictConfig) -> None:
    """Every value is set (no ``???``) and every ``${...}`` interpolation resolves."""
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        raise UserError(f"{err.full_key} has no value; set it on the command line "
                        f"({err.full_key}=...)") from err
    except InterpolationResolutionError as err:
        reason = str(err).splitlines()[0]
        raise UserError(f"{err.full_key}: cannot be resolved ({reason})") from err


def check_names(cfg: DictConfig) -> None:
    # the strategy's name and numbers are checked by build_plan (validate_config's last step)
    if cfg.dataset.name not in SOURCES:
        raise choice_error("dataset", cfg.dataset.name, SOURCES)
    check_model_name(cfg.model.name)
    check_weight_source(cfg.model.weights)
    if cfg.optimizer.name not in OPTIMIZERS:
        raise choice_error("optimizer.name", cfg.optimizer.name, OPTIMIZERS)
    if cfg.optimizer.schedule not in SCHEDULES:
        raise choice_error("optimizer.schedule", cfg.optimizer.schedule, SCHEDULES)
    policy = cfg.dataset.get("bad_images", "error")
    if policy not in BAD_IMAGE_POLICIES:
        raise choice_error("dataset.bad_images", policy, BAD_IMAGE_POLICIES)


def check_numbers(cfg: DictConfig) -> None:
    integer("seed", cfg.seed, lowest=0)
    integer("trainer.max_epochs", cfg.trainer.max_epochs, lowest=1)
    integer("data.batch_size", cfg.data.batch_size, lowest=1)
    integer("data.num_workers", cfg.data.num_workers, lowest=0)
    number("dataset.train_fraction", cfg.dataset.train_fraction, above=0, at_most=1)
    val, test = cfg.dataset.val_fraction, cfg.dataset.test_fraction
    number("dataset.val_fraction", val, above=0, below=1)
    number("dataset.test_fraction", test, above=0, below=1)
    if val + test >= 1:
        raise UserError(f"dataset.val_fraction={val!r} + dataset.test_fraction={test!r} leave no "
                        "training data; allowed: a sum below 1")
    if cfg.dataset.get("image_size") is not None:
        integer("dataset.image_size", cfg.dataset.image_size, lowest=8)
    number("optimizer.weight_decay", cfg.optimizer.weight_decay, at_least=0)
    number("optimizer.warmup_epochs", cfg.optimizer.warmup_epochs, at_least=0)
    number("optimizer.min_lr_factor", cfg.optimizer.min_lr_factor, at_least=0, at_most=1)
    number("model.drop_rate", cfg.model.drop_rate, at_least=0, below=1)
    number("model.label_smoothing", cfg.model.label_smoothing, at_least=0, below=1)


@cache  # the jobs of a multirun share one process and mostly one model
def count_groups(model_name: str) -> int:
    """Number of layer groups of ``model_name`` (head included), without allocating weights."""
    with torch.device("meta"):
        model = timm.create_model(model_name, num_classes=2)
    return len(layer_groups(model))
