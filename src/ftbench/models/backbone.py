"""A timm backbone with a fresh classifier, its pretrained weights and its layer groups.

Layer groups come from timm's own ``group_matcher(coarse=True)`` (stem, then one group per
stage), so every timm family is split the way its authors intended. The new classifier is
always the top group of its own, whatever timm grouped it with.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import timm
from timm.models import group_parameters
from torch import nn

from ftbench.models.timm_api import timm_api
from ftbench.models.weights import (
    WEIGHT_FILE_SUFFIXES,
    WEIGHT_SOURCES,
    load_into,
    packaged_state_dict,
    read_state_dict,
    timm_pretrained,
)
from ftbench.run.failures import UserError


@dataclass(frozen=True)
class LayerGroup:
    """An ordered slice of the network that is frozen, unfrozen and LR-scaled as one."""

    name: str
    param_names: tuple[str, ...]


def check_model_name(name: str) -> None:
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"model.name={name!r} is not a timm model{hint} (see timm.list_models())")


def check_weight_source(weights: str) -> None:
    if weights in WEIGHT_SOURCES or str(weights).endswith(WEIGHT_FILE_SUFFIXES):
        return
    raise UserError(
        f"model.weights={weights!r} is not valid; allowed: {', '.join(WEIGHT_SOURCES)}, "
        f"or a path to a {'/'.join(WEIGHT_FILE_SUFFIXES)} file"
    )


def classifier_param_names(model: nn.Module) -> set[str]:
    """Names of the classifier's parameters, found by identity rather than by name patterns."""
    head = {id(p) for p in timm_api(model).get_classifier().parameters()}
    return {name for name, p in model.named_parameters() if id(p) in head}


def create_backbone(name: str, num_classes: int, weights: str = "package",
                    drop_rate: float = 0.0) -> nn.Module:
    """Create ``name`` with a new ``num_classes`` classifier on top of ``weights``."""
    check_model_name(name)
    check_weight_source(weights)
    if weights == "timm":
        return timm_pretrained(name, num_classes, drop_rate=drop_rate)
    if weights == "package":
        model = timm.create_model(name, drop_rate=drop_rate)  # with its ImageNet head, to match the file
        load_into(model, packaged_state_dict(name, model), set(), source="package")
        timm_api(model).reset_classifier(num_classes)
        return model
    model = timm.create_model(name, num_classes=num_classes, drop_rate=drop_rate)
    if weights != "none":
        load_into(model, read_state_dict(weights), classifier_param_names(model), source=weights)
    return model


def layer_groups(model: nn.Module) -> list[LayerGroup]:
    """Split ``model`` into groups, bottom (stem) to top (classifier).

    timm puts parameters its matcher does not name (the classifier, and neck layers such as
    ConvNeXt's ``head.norm``) into one last group. We lift the classifier out as the top
    group and fold any pretrained leftovers into the stage below, where they belong.
    """
    head = classifier_param_names(model)
    grouped = group_parameters(model, timm_api(model).group_matcher(coarse=True))
    ordered = [grouped[k] for k in sorted(grouped)]
    backbone: list[list[str]] = []
    for names in ordered:
        rest = [n for n in names if n not in head]
        if len(rest) < len(names) and backbone:  # the catch-all group that held the head
            backbone[-1].extend(rest)
        elif rest:
            backbone.append(rest)
    head_names = [n for n, _ in model.named_parameters() if n in head]
    groups = [LayerGroup("stem" if i == 0 else f"stage{i}", tuple(names))
              for i, names in enumerate(backbone)]
    groups.append(LayerGroup("head", tuple(head_names)))
    assigned = [n for g in groups for n in g.param_names]
    if len(assigned) != len(set(assigned)) or set(assigned) != {n for n, _ in model.named_parameters()}:
        raise RuntimeError(f"layer groups of {type(model).__name__} do not partition its parameters")
    return groups


def group_modules(model: nn.Module, groups: list[LayerGroup]) -> list[list[nn.Module]]:
    """For each group, the largest submodules whose parameters all lie in that group.

    Used to put frozen groups in eval mode as whole modules: BatchNorm statistics stay put
    and dropout/stochastic depth inside a frozen block is off, as for a feature extractor.
    Parameter-free modules (pooling, activations) are covered by their parent.
    """
    owner = {name: i for i, g in enumerate(groups) for name in g.param_names}
    result: list[list[nn.Module]] = [[] for _ in groups]

    def visit(prefix: str, module: nn.Module) -> None:
        names = {f"{prefix}{n}" for n, _ in module.named_parameters()}
        owners = {owner[n] for n in names}
        if len(owners) == 1 and module is not model:
            result[owners.pop()].append(module)
            return
        for child_name, child in module.named_children():
            visit(f"{prefix}{child_name}.", child)

    visit("", model)
    return result


def group_param_count(model: nn.Module, group: LayerGroup) -> int:
    params = dict(model.named_parameters())
    return sum(params[n].numel() for n in group.param_names)
