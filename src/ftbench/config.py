"""The configuration: where it lives, its resolvers, and the one check of it before any heavy work.

Every value a user can set is checked here, once, before data or weights are read: the
layer groups that ``strategy.trainable_groups`` counts and ``strategy.groups`` names, the
layers ``strategy.target_modules`` may adapt and the highest ``strategy.rank`` come from the
architecture built on PyTorch's ``meta`` device, which allocates nothing. Checks that need the data (folders,
images, the number of classes) or the weights file run where those are read, and raise the
same one-line ``UserError``. The code that uses a value afterwards trusts it.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any, get_args

import timm
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from ftbench.data.shifts import Shift, parse_shifts
from ftbench.data.sources import BAD_IMAGE_POLICIES, SOURCES
from ftbench.finetune.optim import OPTIMIZERS, SCHEDULES
from ftbench.finetune.strategies import build_plan, help_lines, registered
from ftbench.models.adapters import ADAPTER_STRATEGIES, check_adapters
from ftbench.models.backbone import check_model_name, check_weight_source, layer_groups
from ftbench.run.checks import choice, choice_error, integer, number
from ftbench.run.failures import UserError, user_error_within
from ftbench.run.secret_overrides import job_dirname
from ftbench.run.threads import check_threads, copies_started
from ftbench.stats.choice import MAX_RESAMPLES, MIN_RESAMPLES
from ftbench.tracking.loggers import WANDB_MODES

# Shipped inside the package, so that an installed ftbench finds its configs anywhere.
CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")
CONFIG_NAME = "config"
PROGRESS_FORMS = ("auto", "bar", "lines")
MAX_SEED = 2**32 - 1
HYDRA_VALUE = re.compile(r"\$\{hydra:\s*([\w.]+)\s*\}")  # ${hydra:runtime.output_dir}


def _first_set(value, default):
    return default if value in (None, "") else value


def _unless_set(value, default):
    return default if value in (None, "") else None


def surgical_sweep(model_name: str) -> str:
    """``strategy.groups`` values of the surgical study as a Hydra sweep: the probe (``[]``),
    each backbone group of ``model_name`` alone, and every group (``all``)."""
    check_model_name(model_name)
    return ",".join(["[]", *(f"[{name}]" for name in group_names(model_name)[:-1]), "all"])


def groups_label(groups) -> str:
    """``strategy.groups`` in a folder name: ``stage1``, ``stem+stage2``, ``none``, ``all``."""
    return groups if isinstance(groups, str) else "+".join(str(g) for g in groups) or "none"


def register_resolvers() -> None:
    """The resolvers the configs use: a resumed run writes into its own folder (``hydra.run.dir``
    follows ``resume``), Hydra saves no new config over the run's own, a multirun's job folders
    are named without secrets, and ``experiment=surgical`` sweeps the groups of the model it
    runs on."""
    OmegaConf.register_new_resolver("ftbench.first_set", _first_set, replace=True)
    OmegaConf.register_new_resolver("ftbench.unless_set", _unless_set, replace=True)
    OmegaConf.register_new_resolver("ftbench.job_dirname", job_dirname, replace=True)
    OmegaConf.register_new_resolver("ftbench.surgical_sweep", surgical_sweep, replace=True)
    OmegaConf.register_new_resolver("ftbench.groups_label", groups_label, replace=True)
    # the strategy registry (ftbench.finetune.strategies), said once: the lists, sweeps and help
    OmegaConf.register_new_resolver("ftbench.strategies", lambda: list(registered()), replace=True)
    OmegaConf.register_new_resolver("ftbench.strategy_sweep", lambda: ",".join(registered()), replace=True)
    OmegaConf.register_new_resolver("ftbench.strategy_help", help_lines, replace=True)


# Registered on import too: a launcher's worker process (joblib) resolves a job's folder
# after importing the task function's module, without running ``main``.
register_resolvers()


def compose_config(*overrides: str) -> DictConfig:
    """The config ``python -m ftbench.train OVERRIDES`` runs with, composed without running it:
    for code that calls ``ftbench.train.fit`` itself (benchmarks, notebooks, tests)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=CONFIG_NAME, overrides=list(overrides))


def job_config(cfg: DictConfig, save_dir: str) -> DictConfig:
    """A job's composed config without Hydra's node, as the job will check it: its logger
    writes into ``save_dir`` for the check (its own folder is not known yet)."""
    if cfg.get("logger"):
        with open_dict(cfg):
            cfg.logger.save_dir = str(save_dir)
    return OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"])  # a config's keys are names


def with_hydra_values(cfg: DictConfig, composed: DictConfig) -> DictConfig:
    """A copy of ``cfg`` in which each ``${hydra:KEY}`` holds its value in ``composed`` (a config
    with Hydra's node), as Hydra's resolver would give it. That resolver reads Hydra's singleton,
    which Hydra sets only in its job, after it created the run folder: a run is checked before
    (``ftbench.train.PrepareRun``) through this copy, leaving Hydra's own state alone."""

    def value(key: str) -> Any:
        return OmegaConf.select(composed, f"hydra.{key}")

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        if not isinstance(node, str) or "${hydra:" not in node:
            return node
        whole = HYDRA_VALUE.fullmatch(node)  # the whole value: its type kept (a number, a list)
        return value(whole[1]) if whole else HYDRA_VALUE.sub(lambda m: str(value(m[1])), node)

    filled = OmegaConf.create(fill(OmegaConf.to_container(cfg, resolve=False)))
    OmegaConf.set_struct(filled, OmegaConf.is_struct(cfg))
    return filled


def validate_config(cfg: DictConfig, composed: DictConfig | None = None) -> None:
    """Raise ``UserError`` for the first bad value in ``cfg``; return quietly when all is well.
    ``composed``: the config with Hydra's node, before Hydra's job (``with_hydra_values``)."""
    if composed is not None:
        cfg = with_hydra_values(cfg, composed)
    check_resolvable(cfg)
    check_names(cfg)
    check_numbers(cfg)
    eval_shifts(cfg)
    check_trainer(cfg.trainer)
    build_plan(cfg.strategy, group_names(cfg.model.name), cfg.trainer.max_epochs)
    if cfg.strategy.name in ADAPTER_STRATEGIES:
        check_adapters(meta_model(cfg.model.name), cfg.strategy)


def check_resolvable(cfg: DictConfig) -> None:
    """Every value is set (no ``???``) and every ``${...}`` interpolation resolves."""
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        raise UserError(f"{err.full_key} has no value; set it on the command line "
                        f"({err.full_key}=...)") from err
    except InterpolationResolutionError as err:
        inner = user_error_within(err)
        if inner is not None:  # a resolver's own one line (a broken strategy plugin)
            raise inner from err
        reason = str(err).splitlines()[0]
        raise UserError(f"{err.full_key}: cannot be resolved ({reason})") from err


def check_names(cfg: DictConfig) -> None:
    # the strategy's name and knobs are checked by build_plan (validate_config's last step)
    choice("dataset", cfg.dataset.name, SOURCES)
    check_model_name(cfg.model.name)
    check_weight_source(cfg.model.weights)
    choice("optimizer.name", cfg.optimizer.name, OPTIMIZERS)
    choice("optimizer.schedule", cfg.optimizer.schedule, SCHEDULES)
    choice("dataset.bad_images", cfg.dataset.bad_images, BAD_IMAGE_POLICIES)
    if cfg.dataset.name == "imagefolder" and not cfg.dataset.root:
        raise UserError("dataset.root has no value; set it to your folder of class subfolders "
                        "(dataset.root=...)")
    if cfg.get("logger") and "mode" in cfg.logger:
        choice("logger.mode", cfg.logger.mode, WANDB_MODES)
    choice("progress", cfg.get("progress", "auto"), PROGRESS_FORMS)
    ood_root = cfg.dataset.get("ood_root")
    if ood_root is not None and (not isinstance(ood_root, str) or not ood_root):
        raise UserError(f"dataset.ood_root={ood_root!r} is not valid; allowed: null, or a folder "
                        "of class subfolders named like the training classes")


def eval_shifts(cfg: DictConfig) -> list[Shift]:
    """The shifted test sets of ``eval.shifts``."""
    return parse_shifts(cfg.eval.shifts)


def check_numbers(cfg: DictConfig) -> None:
    integer("seed", cfg.seed, lowest=0, highest=MAX_SEED, why="numpy's seeds are 32-bit")
    integer("dataset.split_seed", cfg.dataset.split_seed, lowest=0, highest=MAX_SEED,
            why="numpy's seeds are 32-bit")
    report = cfg.get("report") or {}
    if "margin" in report:
        number("report.margin", report["margin"], at_least=0.0, below=1.0)
    if "confidence" in report:
        number("report.confidence", report["confidence"], above=0.5, below=1.0)
    if "resamples" in report:
        integer("report.resamples", report["resamples"], lowest=MIN_RESAMPLES, highest=MAX_RESAMPLES,
                why="more would exhaust memory, not sharpen the intervals")
    if "upscale" in cfg.dataset:
        integer("dataset.upscale", cfg.dataset.upscale, lowest=1)
    for key in ("mean", "std"):
        values = cfg.dataset.get(key)
        if values is not None and (not OmegaConf.is_list(values) or len(values) not in (1, 3)):
            raise UserError(f"dataset.{key}={values!r} is not valid; allowed: null (the "
                            "backbone's own), or 3 numbers (one per colour channel)")
        for i, value in enumerate(values or []):
            number(f"dataset.{key}[{i}]", value, **({"above": 0} if key == "std" else {}))
    integer("trainer.max_epochs", cfg.trainer.max_epochs, lowest=1)
    integer("data.batch_size", cfg.data.batch_size, lowest=1)
    integer("data.num_workers", cfg.data.num_workers, lowest=0)
    number("dataset.train_fraction", cfg.dataset.train_fraction, above=0, at_most=1)
    check_exact_sizes(cfg.dataset)
    val, test = cfg.dataset.val_fraction, cfg.dataset.test_fraction
    number("dataset.val_fraction", val, above=0, below=1)
    number("dataset.test_fraction", test, above=0, below=1)
    if val + test >= 1:
        raise UserError(f"dataset.val_fraction={val!r} + dataset.test_fraction={test!r} leave no "
                        "training data; allowed: a sum below 1")
    if cfg.dataset.image_size is not None:
        integer("dataset.image_size", cfg.dataset.image_size, lowest=8)
    number("optimizer.weight_decay", cfg.optimizer.weight_decay, at_least=0)
    number("optimizer.warmup_epochs", cfg.optimizer.warmup_epochs, at_least=0)
    number("optimizer.min_lr_factor", cfg.optimizer.min_lr_factor, at_least=0, at_most=1)
    momentum = number("optimizer.momentum", cfg.optimizer.momentum, at_least=0, below=1)
    if cfg.optimizer.name == "sgd" and cfg.optimizer.nesterov and momentum == 0:
        raise UserError("optimizer.momentum=0 is not valid with optimizer.nesterov=true; allowed: "
                        "a momentum in (0, 1), or optimizer.nesterov=false")
    betas = cfg.optimizer.betas
    if not OmegaConf.is_list(betas) or len(betas) != 2:
        raise UserError(f"optimizer.betas={betas!r} is not valid; allowed: two numbers in [0, 1)")
    for i, beta in enumerate(betas):
        number(f"optimizer.betas[{i}]", beta, at_least=0, below=1)
    number("model.drop_rate", cfg.model.drop_rate, at_least=0, below=1)
    number("model.label_smoothing", cfg.model.label_smoothing, at_least=0, below=1)


def check_exact_sizes(dataset: DictConfig) -> None:
    """``train_size``, ``train_per_class`` and ``val_size``: null or a count, and at most one
    way to size the training set. Whether the data holds that many is checked where it is read."""
    for key in ("train_size", "train_per_class", "val_size"):
        value = dataset.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError(f"dataset.{key}={value!r} is not valid; allowed: null, or an integer >= 1")
    size, per_class = dataset.get("train_size"), dataset.get("train_per_class")
    if size is not None and per_class is not None:
        raise UserError(f"dataset.train_size={size} and dataset.train_per_class={per_class} are both "
                        "set; allowed: one of them, the other null")
    exact = "train_size" if size is not None else "train_per_class" if per_class is not None else None
    if exact and dataset.train_fraction != 1.0:
        raise UserError(f"dataset.train_fraction={dataset.train_fraction!r} and dataset.{exact}="
                        f"{dataset[exact]} are both set; allowed: train_fraction=1.0 with an exact "
                        f"count, or dataset.{exact}=null")


def check_trainer(trainer: DictConfig) -> None:
    """The Trainer settings Lightning would refuse in an error that does not name the key."""
    from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT
    from lightning.pytorch.accelerators import AcceleratorRegistry

    def flat(kind) -> list:
        return [v for arg in get_args(kind) for v in (flat(arg) if get_args(arg) else [arg])]

    precision = trainer.get("precision", "32-true")
    if precision not in flat(_PRECISION_INPUT):
        raise choice_error("trainer.precision", precision, dict.fromkeys(map(str, flat(_PRECISION_INPUT))))
    names = sorted(AcceleratorRegistry.available_accelerators())
    accelerator = choice("trainer.accelerator", trainer.get("accelerator", "auto"),
                         ["auto", "gpu", *names])
    present = [n for n in names if AcceleratorRegistry[n]["accelerator"].is_available()]
    if accelerator not in ("auto", *present) and not (accelerator == "gpu" and
                                                     {"cuda", "mps"} & set(present)):
        raise UserError(f"trainer.accelerator={accelerator!r} is not available on this machine; "
                        f"allowed: {', '.join(['auto', *present])}")
    devices = trainer.get("devices", "auto")
    if OmegaConf.is_list(devices):
        ok = len(devices) > 0 and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                      for d in devices)
    else:
        ok = devices == "auto" or (isinstance(devices, int) and not isinstance(devices, bool)
                                   and (devices >= 1 or devices == -1))
    if not ok:
        raise UserError(f"trainer.devices={devices!r} is not valid; allowed: an integer >= 1, -1 "
                        "(every device), auto, or a list of device indices")
    check_threads(trainer.get("threads", "auto"))
    copies_started()


@cache  # the jobs of a multirun share one process and mostly one model
def meta_model(model_name: str) -> torch.nn.Module:
    """The architecture of ``model_name``, built without allocating weights (never modified)."""
    with torch.device("meta"):
        return timm.create_model(model_name, num_classes=2)


@cache
def group_names(model_name: str) -> tuple[str, ...]:
    """The layer groups of ``model_name`` (head included)."""
    return tuple(g.name for g in layer_groups(meta_model(model_name)))
