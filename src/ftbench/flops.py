"""FLOPs of real steps, counted by torch's ``FlopCounterMode`` with its known errors corrected.

What is counted: multiply-adds of convolutions, matrix products and attention, 2 FLOPs each,
forward and backward as they actually run (a frozen weight gets no weight gradient, a frozen
prefix no backward at all). Normalisation, activations, pooling and optimizer updates are not
counted: the fvcore/DeepSpeed convention, and a small share of a step's arithmetic.

Corrections to ``torch.utils.flop_counter`` (checked against hand counts in tests/test_flops.py):

- ``convolution_backward``: torch counts a grouped convolution's weight gradient as if the
  convolution were dense, ``groups`` times too much (a depthwise 3x3 over C channels: C times).
  Each gradient of a convolution (input or weight) touches every (output, weight) pair once,
  so it costs exactly the forward's FLOPs.
- CPU attention (``_scaled_dot_product_flash_attention_for_cpu`` and its backward) is not in
  torch's table at all, so ViT attention on CPU counted zero.
- Attention backward: torch adds the recomputation of the scores that flash kernels do; we
  count the algorithm's four matrix products (grad of V, of the scores, of Q, of K), twice
  the forward, whatever kernel runs, so that CPU and GPU counts agree.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, sdpa_flop_count

aten = torch.ops.aten


def conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation,
                       transposed, _output_padding, _groups, output_mask, out_shape=None,
                       **kwargs) -> int:
    """Input and weight gradients each cost one forward, grouped/depthwise included."""
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed=transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def sdpa_forward_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def sdpa_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                       **kwargs) -> int:
    """Four products of the forward's size: dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q."""
    return 2 * sdpa_flop_count(query_shape, key_shape, value_shape)


CORRECTED_FORMULAS = {
    aten.convolution_backward: conv_backward_flop,
    aten._scaled_dot_product_flash_attention_for_cpu: sdpa_forward_flop,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: sdpa_backward_flop,
    aten._scaled_dot_product_efficient_attention_backward: sdpa_backward_flop,
    aten._scaled_dot_product_flash_attention_backward: sdpa_backward_flop,
    aten._scaled_dot_product_cudnn_attention_backward: sdpa_backward_flop,
}


def flop_counter() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` with the corrections above; use as a context manager."""
    return FlopCounterMode(display=False, custom_mapping=CORRECTED_FORMULAS)
