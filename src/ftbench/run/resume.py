"""``python -m ftbench.train resume=RUN_DIR``: continue a run with its own config.

The run's folder holds everything needed: the config Hydra saved (``.hydra/config.yaml``)
and ``last.ckpt``. The resumed process writes into the same folder (``hydra.run.dir``
follows ``resume``) and leaves the run's saved config untouched (``hydra.output_subdir``
is null while resuming), so a run can be resumed as often as it is interrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from ftbench.run.checkpoints import (
    CONFIG_DIGEST,
    LAST_CHECKPOINT,
    changed_left_out_groups,
    left_out_keys,
    load_checkpoint,
)
from ftbench.run.failures import UserError
from ftbench.run.redaction import redact
from ftbench.run.result import RESULT_FILE, SAVED_CONFIG, UnreadableResult, read_result

if TYPE_CHECKING:  # the type only: the run primitives never import the models at run time
    from ftbench.models.timm_api import TimmModel

log = logging.getLogger("ftbench")


def resume_target(cfg: DictConfig, task_overrides: list[str],
                  multirun: bool) -> tuple[DictConfig, Path | None]:
    """The config and checkpoint to run: ``cfg`` itself, or the saved run ``cfg.resume`` names."""
    if not cfg.get("resume"):
        return cfg, None
    if multirun:
        raise UserError(f"resume={cfg.resume!r} continues one run; allowed: without -m")
    others = [o for o in task_overrides if not o.startswith("resume=")]
    return load_run(cfg.resume, others)


def load_run(run_dir: str | Path, extra_overrides: list[str]) -> tuple[DictConfig, Path]:
    """The saved config of the run in ``run_dir`` and its checkpoint to continue from."""
    run_dir = Path(run_dir)
    if extra_overrides:
        raise UserError(f"resume={str(run_dir)!r} continues the run with its own config; "
                        f"allowed: no other overrides (got {' '.join(extra_overrides)})")
    config = run_dir / SAVED_CONFIG
    if not config.is_file():
        raise UserError(f"resume={str(run_dir)!r} is not a run folder; allowed: a folder "
                        f"with {SAVED_CONFIG} and {LAST_CHECKPOINT}")
    checkpoint = run_dir / LAST_CHECKPOINT
    if not checkpoint.is_file():
        raise UserError(f"resume={str(run_dir)!r} has no {LAST_CHECKPOINT}: the run stopped "
                        "before its first epoch ended; start it again instead")
    if (run_dir / RESULT_FILE).is_file():
        try:
            status = read_result(run_dir).status
        except (OSError, UnreadableResult) as err:
            raise UserError(f"resume={str(run_dir)!r}: its {RESULT_FILE} is not a readable result ({err}); "
                            "allowed: a run folder whose files are intact") from err
        if status == "completed":
            raise UserError(f"resume={str(run_dir)!r} has already completed ({RESULT_FILE})")
    try:
        cfg = OmegaConf.load(config)
        if not isinstance(cfg, DictConfig):
            raise ValueError("not a mapping")
        cfg.resume = None  # the saved config is the run's own; it does not resume anything itself
    except (OSError, ValueError, yaml.YAMLError, OmegaConfBaseException) as err:
        raise UserError(f"resume={str(run_dir)!r}: its {SAVED_CONFIG} is not a readable config "
                        f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                        "allowed: a run folder whose files are intact") from err
    return cfg, checkpoint


def config_digest(cfg: DictConfig) -> str:
    """A digest of the config as the run saved it (``.hydra/config.yaml``: unresolved, secrets
    masked), kept in every checkpoint: a resume from a config edited since is refused."""
    data = redact(OmegaConf.to_container(cfg, resolve=False))
    data.pop("resume", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def check_checkpoint_fits(checkpoint: str | Path, model: nn.Module, config: str | None = None) -> int:
    """Refuse a checkpoint that is damaged (its content digest), that does not fit ``model``,
    freshly built from the run's config (tensors of other shapes, e.g. another number of
    classes; groups the checkpoint left out as starting weights that are not ``model``'s,
    e.g. a changed weight file), or that was trained with another config than ``config``
    (a ``config_digest``; the run's saved config edited since).

    Called before the trainer exists, so a refused resume leaves the run folder untouched.
    Returns the checkpoint's global step, where the resumed run's logs go on.
    """
    saved = load_checkpoint(checkpoint, require_digest=True)
    if not isinstance(saved, dict) or not isinstance(saved.get("state_dict"), dict):
        raise UserError(f"resume checkpoint {str(checkpoint)!r} is not a checkpoint of a run "
                        "(no state_dict)")
    state = saved.get("state_dict", {})
    start = {f"model.{k}": v for k, v in model.state_dict().items()}
    expected = dict(start)
    for key in left_out_keys(saved):
        expected.pop(key, None)
    head = cast("TimmModel", model).get_classifier()  # a timm model: nn.Module's typing cannot see it
    head_key = next((f"model.{n}" for n, p in model.named_parameters() if p is head.weight), None)
    if head_key is not None and head_key in state and state[head_key].shape != expected[head_key].shape:
        raise UserError(f"resume checkpoint {str(checkpoint)!r} was trained for "
                        f"{state[head_key].shape[0]} classes, the dataset has "
                        f"{expected[head_key].shape[0]}; allowed: a checkpoint of this run")
    mismatched = sorted(k for k in expected if k not in state or
                        not isinstance(state[k], torch.Tensor) or state[k].shape != expected[k].shape)
    if mismatched:
        raise UserError(f"resume checkpoint {str(checkpoint)!r} does not fit model "
                        f"{type(model).__name__} (first mismatch: {mismatched[0]})")
    differ = changed_left_out_groups(saved, start)
    if differ:
        raise UserError(f"resume checkpoint {str(checkpoint)!r}: the starting weights of groups "
                        f"{', '.join(differ)} differ from those it was trained from (was "
                        "model.weights changed?); allowed: the weights the run started with")
    if config is not None and saved.get(CONFIG_DIGEST) != config:
        raise UserError(f"resume checkpoint {str(checkpoint)!r} was trained with another config "
                        f"than the run's {SAVED_CONFIG} (edited since?); allowed: the config the "
                        "run was started with")
    return int(saved.get("global_step", 0))
