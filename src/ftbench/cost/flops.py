"""FLOPs of real steps, counted by torch's ``FlopCounterMode`` with its known errors corrected.

What is counted: multiply-adds of convolutions, matrix products and attention, 2 FLOPs each,
forward and backward as they actually run (a frozen weight gets no weight gradient, a frozen
prefix no backward at all). Normalisation, activations, pooling and optimizer updates are not
counted: the fvcore/DeepSpeed convention, and a small share of a step's arithmetic.

Corrections to ``torch.utils.flop_counter`` (checked against hand counts in tests/cost/test_flops.py):

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


class FlopTally:
    """Training and evaluation FLOPs of a run, each kind of step counted once.

    A training *phase* is a set of trainable groups on one kind of input (images, or the
    pre-logit features of the feature cache): its first step runs under the counter, and the
    phase costs its FLOPs per image times the images it trained on (FLOPs are linear in the
    batch size, so a short last batch is counted right). Evaluation is counted on the first
    batch of each input shape. No step is added, no random number drawn, nothing updated.
    """

    def __init__(self) -> None:
        self.train_flops = 0.0
        self.eval_flops = 0.0
        self.epoch_flops: list[float] = []
        self.running_epoch = 0.0
        self.phases: list[dict] = []  # {"trainable": mask, "input": shape, "flops_per_image", "epoch"}
        self.eval_per_image: dict[str, float] = {}  # input shape ("3x32x32", "1280") -> per image
        self._counter: FlopCounterMode | None = None
        self._counting: tuple[int, dict] | None = None  # images under the counter, and for what

    @property
    def counting(self) -> bool:
        """Whether the running step is being counted: the first of its phase or input shape."""
        return self._counter is not None

    def _start(self, images: int, what: dict) -> None:
        self._counter = flop_counter()
        self._counter.__enter__()
        self._counting = (images, what)

    def stop(self) -> dict | None:
        """End a count in progress; returns what was counted, with its FLOPs per image."""
        counter, counting = self._counter, self._counting
        if counter is None or counting is None:
            return None
        counter.__exit__(None, None, None)
        (images, what), flops = counting, counter.get_total_flops()
        self._counter = self._counting = None
        return {**what, "flops_per_image": flops / images}

    def _phase(self, mask: list[bool], shape: list[int]) -> dict | None:
        return next((p for p in self.phases if p["trainable"] == mask and p["input"] == shape), None)

    # -- training ---------------------------------------------------------------------------
    def train_step_starts(self, mask: list[bool], inputs: torch.Tensor, images: int, epoch: int) -> None:
        shape = list(inputs.shape[1:])
        if self._phase(mask, shape) is None:
            self._start(images, {"trainable": mask, "input": shape, "epoch": epoch})

    def train_step_ends(self, mask: list[bool], inputs: torch.Tensor, images: int) -> None:
        counted = self.stop()  # after backward, or now for a step without one
        if counted is not None:
            self.phases.append(counted)
        phase = self._phase(mask, list(inputs.shape[1:]))
        if phase is None:  # the phase's first step was counted above
            raise RuntimeError(f"no FLOP count of the phase {mask} on inputs {list(inputs.shape[1:])}")
        self.running_epoch += phase["flops_per_image"] * images

    def epoch_ends(self) -> float:
        flops, self.running_epoch = self.running_epoch, 0.0
        self.epoch_flops.append(flops)
        self.train_flops += flops
        return flops

    # -- evaluation -------------------------------------------------------------------------
    def eval_step_starts(self, inputs: torch.Tensor, images: int) -> None:
        if shape_key(inputs) not in self.eval_per_image:
            self._start(images, {"input": shape_key(inputs)})

    def eval_step_ends(self, inputs: torch.Tensor, images: int) -> None:
        counted = self.stop()
        if counted is not None:
            self.eval_per_image[counted["input"]] = counted["flops_per_image"]
        self.eval_flops += self.eval_per_image[shape_key(inputs)] * images

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        # a run resumed mid-epoch (saved by a signal) goes on adding to its running epoch
        return {"train_flops": self.train_flops, "eval_flops": self.eval_flops,
                "epoch_flops": self.epoch_flops, "phases": self.phases,
                "eval_flops_per_image": self.eval_per_image, "running_epoch_flops": self.running_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.train_flops, self.eval_flops = state["train_flops"], state["eval_flops"]
        self.epoch_flops, self.phases = list(state["epoch_flops"]), list(state["phases"])
        self.eval_per_image = dict(state["eval_flops_per_image"])
        self.running_epoch = state["running_epoch_flops"]


def shape_key(inputs: torch.Tensor) -> str:
    """An input's per-sample shape, e.g. "3x32x32" for images, "1280" for cached features."""
    return "x".join(str(d) for d in inputs.shape[1:])
