"""FLOP counts checked against counts derived by hand, layer by layer and for whole steps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ftbench.cost.flops import flop_counter
from tests.cost.hand_flops import step_flops


def counted(fn) -> int:
    with flop_counter() as counter:
        fn()
    return counter.get_total_flops()


# -- single layers: hand formulas ---------------------------------------------------------------
@pytest.mark.parametrize("groups", [1, 2, 8], ids=["dense", "grouped", "depthwise"])
@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("weight_grad", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv2d_forward_and_backward(groups, input_grad, weight_grad, channels_last):
    n, c, h, out_c, k = 2, 8, 9, 8, 3
    conv = nn.Conv2d(c, out_c, k, stride=2, padding=1, groups=groups)
    conv.requires_grad_(weight_grad)
    x = torch.randn(n, c, h, h, requires_grad=input_grad)
    if channels_last:
        conv, x = conv.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    out_hw = (h + 2 - k) // 2 + 1
    forward = 2 * n * out_c * out_hw**2 * (c // groups) * k * k  # 2 x multiply-adds
    assert counted(lambda: conv(x)) == forward
    if input_grad or weight_grad:
        y = conv(x)
        # every gradient (input, weight) costs one forward; torch counts grouped weight grads x groups
        assert counted(lambda: y.sum().backward()) == forward * (input_grad + weight_grad)


@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("weight_grad", [True, False])
def test_linear_forward_and_backward(input_grad, weight_grad):
    lin = nn.Linear(6, 7).requires_grad_(weight_grad)
    x = torch.randn(3, 4, 6, requires_grad=input_grad)  # token-shaped input, as in ViT
    forward = 2 * 3 * 4 * 6 * 7
    assert counted(lambda: lin(x)) == forward
    if input_grad or weight_grad:
        y = lin(x)
        assert counted(lambda: y.sum().backward()) == forward * (input_grad + weight_grad)


def test_attention_forward_and_backward_on_cpu():
    b, heads, tokens, dim = 2, 3, 5, 4
    q, k, v = (torch.randn(b, heads, tokens, dim, requires_grad=True) for _ in range(3))
    forward = 2 * (2 * b * heads * tokens * tokens * dim)  # Q K^T and P V
    assert counted(lambda: F.scaled_dot_product_attention(q, k, v)) == forward
    out = F.scaled_dot_product_attention(q, k, v)
    assert counted(lambda: out.sum().backward()) == 2 * forward  # dV, dP, dQ, dK


MODELS = ["test_efficientnet", "test_resnet", "test_vit", "test_convnext", "tf_efficientnet_lite0"]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_step_flops_agree_with_an_independent_count(name):
    size = 160 if name == "test_vit" else 32  # test_vit's patch grid is fixed at 160 px
    strategies = ("full", "partial", "linear_probe", "surgical", "bitfit", "lora")
    steps = {s: step_flops(name, s, image_size=size) for s in strategies}
    for strategy, (flops, by_hand) in steps.items():
        assert flops == pytest.approx(by_hand, rel=0.02), strategy
    assert 0 < steps["linear_probe"][0] <= 0.4 * steps["full"][0]
    assert steps["linear_probe"][0] < steps["partial"][0] < steps["full"][0]
    # BitFit needs every input gradient but no weight gradient; LoRA adds its adapters' work
    assert steps["linear_probe"][0] < steps["bitfit"][0] < steps["lora"][0]
