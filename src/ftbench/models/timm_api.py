"""The part of timm's model API that ftbench calls, declared once for the type checker.

Every timm model defines these methods, but the code holds a model as an ``nn.Module``, whose
attributes torch types as ``Tensor | Module`` (its ``__getattr__``): calling them needs the
model read through :func:`timm_api`, which names what is called instead of silencing the checker.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from torch import Tensor, nn


class TimmModel(Protocol):
    def get_classifier(self) -> nn.Module: ...

    def reset_classifier(self, num_classes: int) -> None: ...

    def forward_features(self, x: Tensor) -> Tensor: ...

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor: ...

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]: ...


def timm_api(model: nn.Module) -> TimmModel:
    """``model`` as a timm model: every model ``timm.create_model`` builds (LoRA adapts one in
    place) has these methods, which ``nn.Module``'s typing cannot see."""
    return cast(TimmModel, model)
