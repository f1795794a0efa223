"""LoRA adapters on a timm backbone, through Hugging Face ``peft``, merged back at the end.

The adapters are injected in place into the timm model before its layer groups are computed,
so timm's own group matcher puts each adapter in the group of the layer it wraps (its name is
that layer's, plus ``.lora_A.default.weight``). The strategy plan then trains only the
adapters and the head (``strategies.adapter_or_head``). When training ends, ``peft`` folds the
adapters into the weights they adapt (``merge_and_unload``): the model is a plain timm model
again, and ``model.safetensors`` loads into ``timm.create_model(name, num_classes=...)``.

``peft`` is imported only when a run uses adapters: it pulls in ``transformers`` (seconds).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from omegaconf import OmegaConf
from torch import nn

from ftbench.models.timm_api import timm_api
from ftbench.run.failures import UserError

ADAPTER_PREFIX = "lora_"  # peft's LoraModel.prefix: in the name of every adapter parameter
ADAPTER_STRATEGIES = ("lora",)
# Transformer blocks: the attention's qkv projection and the MLP (timm's names in every ViT).
ATTENTION_TARGETS = ("qkv", "fc1", "fc2")
ADAPTABLE = (nn.Linear, nn.Conv2d)


def _candidates(model: nn.Module) -> dict[str, nn.Linear | nn.Conv2d]:
    """The backbone's linear and convolution layers by name; never the classifier."""
    head = {id(m) for m in timm_api(model).get_classifier().modules()}
    return {name: m for name, m in model.named_modules()
            if isinstance(m, ADAPTABLE) and id(m) not in head}


def default_targets(model: nn.Module) -> list[str]:
    """The layers LoRA adapts unless ``strategy.target_modules`` says otherwise.

    Transformers (a model with ``qkv`` projections): each block's ``qkv``, ``fc1`` and ``fc2``.
    CNNs: every linear layer and every convolution that is not grouped or depthwise (a
    depthwise kernel has few weights to adapt, and peft cannot merge a grouped adapter).
    """
    layers = _candidates(model)
    attention = [n for n in layers if n.rsplit(".", 1)[-1] in ATTENTION_TARGETS]
    if any(n.endswith("qkv") for n in attention):
        return attention
    return [n for n, m in layers.items() if getattr(m, "groups", 1) == 1]


def resolve_targets(model: nn.Module, targets: Sequence[str] | None) -> list[str]:
    """``strategy.target_modules`` as full module names (``None``: the defaults).

    A target names a layer as peft does: its full name or a suffix of whole name parts
    (``qkv`` matches ``blocks.3.attn.qkv``). Each must match a linear or ungrouped convolution
    layer of the backbone.
    """
    if targets is None:
        return default_targets(model)
    listed = isinstance(targets, list | tuple) or OmegaConf.is_list(targets)
    if not listed or not targets or not all(isinstance(t, str) and t for t in targets):
        raise UserError(f"strategy.target_modules={targets!r} is not valid; allowed: null (the "
                        "defaults) or a non-empty list of layer names, e.g. [qkv,fc1,fc2]")
    layers = _candidates(model)
    chosen: list[str] = []
    for target in targets:
        matched = [n for n in layers if n == target or n.endswith(f".{target}")]
        usable = [n for n in matched if getattr(layers[n], "groups", 1) == 1]
        if not usable:
            why = ("only grouped or depthwise convolutions, which peft cannot merge" if matched
                   else "no linear or convolution layer of the backbone (the classifier trains "
                   "fully anyway)")
            raise UserError(f"strategy.target_modules: {target!r} matches {why}; allowed: names "
                            f"such as {', '.join(default_targets(model)[:3])}")
        chosen += [n for n in usable if n not in chosen]
    return chosen


def full_rank(layer: nn.Linear | nn.Conv2d) -> int:
    """The highest rank an update of ``layer``'s weight can have: min(inputs, outputs).

    A convolution's inputs are its input channels times its kernel area: peft adapts it with a
    convolution of the same kernel into ``rank`` channels, then a 1x1 convolution out.
    """
    if isinstance(layer, nn.Linear):
        return min(layer.in_features, layer.out_features)
    inputs = layer.in_channels // layer.groups * math.prod(layer.kernel_size)
    return min(inputs, layer.out_channels)


def check_rank(model: nn.Module, targets: Sequence[str], rank: int) -> None:
    """Refuse a ``strategy.rank`` above the full rank of the widest layer it adapts.

    Above that bound the update of every adapted layer is full-rank already: a higher rank adds
    parameters (and memory, without limit) but no capacity. The bound is the widest layer's,
    not the narrowest's: a rank above a narrow layer's full rank (a squeeze-excite projection
    of 8 channels) is common practice and harmless, since the wider layers still gain from it.
    """
    layers = _candidates(model)
    widest = max(targets, key=lambda name: full_rank(layers[name]))
    bound = full_rank(layers[widest])
    if rank > bound:
        raise UserError(f"strategy.rank={rank!r} is not valid; allowed: an integer 1..{bound} (the "
                        f"full rank of {widest}, the widest layer it adapts: a higher rank adds "
                        "parameters, not capacity)")


def check_adapters(model: nn.Module, strategy_cfg) -> None:
    """The adapter settings of ``strategy_cfg`` against ``model`` (its architecture suffices:
    a model on the ``meta`` device): the layers they adapt and the rank."""
    check_rank(model, resolve_targets(model, strategy_cfg.target_modules), strategy_cfg.rank)


def add_adapters(model: nn.Module, strategy_cfg) -> Callable[[], object]:
    """Inject the strategy's adapters into ``model`` in place; returns what merges them back.

    For a strategy without adapters, nothing is injected and the merge does nothing. The
    adapters' random initialisation draws from torch's generator: call after seeding.
    """
    if strategy_cfg.name not in ADAPTER_STRATEGIES:
        return lambda: None
    from peft import LoraConfig, LoraModel

    config = LoraConfig(r=strategy_cfg.rank, lora_alpha=strategy_cfg.alpha,
                        lora_dropout=strategy_cfg.dropout,
                        target_modules=resolve_targets(model, strategy_cfg.target_modules))
    tuner = LoraModel(model, config, "default")  # wraps the layers of ``model`` itself
    return tuner.merge_and_unload
