"""An independent FLOP count for whole steps, from module hooks and shapes (no dispatch mode)."""

from __future__ import annotations

from math import prod

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from ftbench.cost.flops import flop_counter
from ftbench.finetune.module import FineTuneModule
from ftbench.finetune.strategies import build_plan
from ftbench.models.adapters import add_adapters
from ftbench.models.backbone import create_backbone, layer_groups


class HandCount:
    """2 x multiply-adds per Conv2d, Linear and attention, from shapes seen by module hooks.

    Backward: a grad-input wherever the layer's input needs a gradient, a grad-weight wherever
    its weight trains, each as costly as the forward; attention backward is twice its forward.
    """

    def __init__(self, model: nn.Module):
        self.total = 0
        self.handles = [m.register_forward_hook(self.hook) for m in model.modules()
                        if isinstance(m, (nn.Conv2d, nn.Linear)) or hasattr(m, "fused_attn")]

    def hook(self, module, inputs, output) -> None:
        x = inputs[0]
        if isinstance(module, nn.Conv2d):
            forward = 2 * output.numel() * module.in_channels // module.groups * prod(module.kernel_size)
        elif isinstance(module, nn.Linear):
            forward = 2 * output.numel() * module.in_features
        else:  # timm Attention over (B, N, C) tokens: Q K^T and P V
            b, n, c = x.shape
            forward = 2 * 2 * b * n * n * c
            # q, k, v need gradients if the input does or qkv trains (its weight, or adapters)
            needs_grad = x.requires_grad or any(p.requires_grad for p in module.qkv.parameters())
            self.total += forward * (1 + 2 * needs_grad)
            return
        self.total += forward * (1 + x.requires_grad + module.weight.requires_grad)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def step_flops(name: str, strategy: str, image_size: int = 32, batch: int = 4) -> tuple[int, int]:
    """(counted, by hand) FLOPs of one training step of ``strategy``'s first epoch."""
    torch.manual_seed(0)
    model = create_backbone(name, num_classes=10, weights="none")
    cfg = OmegaConf.create({"name": strategy, "lr": 1e-3, "lr_decay": 2.0, "unfreeze_every": 1,
                            "trainable_groups": 1, "probe_epochs": 1, "groups": ["stage1"],
                            "rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": None})
    add_adapters(model, cfg)  # LoRA's; its layers are Conv2d and Linear, counted like the others
    groups = layer_groups(model)
    plan = build_plan(cfg, [g.name for g in groups], 3)
    module = FineTuneModule(model, groups, plan, None, 10, channels_last=True)  # epoch 0's groups
    module.train()
    x, y = torch.randn(batch, 3, image_size, image_size), torch.randint(0, 10, (batch,))
    hand = HandCount(model)
    with flop_counter() as counter:
        F.cross_entropy(module(x), y).backward()
    hand.remove()
    return counter.get_total_flops(), hand.total
