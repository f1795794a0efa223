"""Memory figures of a run.

- ``peak_memory_mb``: the process's peak (CUDA peak allocated on GPU, peak resident set size
  on CPU), reset per run so that a multirun's jobs (which share one process) each get their own.
- ``TrainingMemory``: what the training itself held on top of what was resident when it
  started, the figure that tells strategies apart. On CPU the resident set is dominated by
  Python, torch and the allocator's caching (a linear probe's process peaks within a few
  percent of a full fine-tune's), so there it is an account of the tensors training held,
  measured on real steps; on a CUDA device it is the allocator's own peak.
"""

from __future__ import annotations

import logging
import resource
import sys
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks

log = logging.getLogger("ftbench")

_PROC_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")  # Linux: writing 5 resets VmHWM, the peak RSS
MB = 2**20


def reset_peak_memory(device: torch.device) -> None:
    """Start the peak afresh; where the system refuses (a container may), say so: the peak
    then includes whatever ran earlier in this process (a multirun's earlier jobs)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif _PROC_STATUS.exists():
        try:
            _CLEAR_REFS.write_text("5")
        except OSError as err:
            log.warning("peak memory: cannot reset this process's peak resident set size (%s: %s); "
                        "peak_memory_mb is the process's peak so far, earlier jobs' included",
                        _CLEAR_REFS, err.strerror or err)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA peak allocated on GPU; the process's peak resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / MB
    if _PROC_STATUS.exists():
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes vs KiB


def _storage(tensor: torch.Tensor) -> tuple[int, int] | None:
    """(address, bytes) of the memory a tensor lives in; None for tensors without storage of
    their own (sparse or other non-strided layouts, meta tensors)."""
    if tensor.layout != torch.strided or tensor.is_meta:
        return None
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.nbytes()


def storage_bytes(tensors: Iterable[torch.Tensor], exclude: frozenset[int] = frozenset()) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views counted once), leaving out
    the storages at the addresses in ``exclude``."""
    seen: dict[int, int] = {}
    for tensor in tensors:
        found = _storage(tensor)
        if found is not None and found[0] not in exclude:
            seen[found[0]] = found[1]
    return sum(seen.values())


def resident_storages(module: nn.Module) -> frozenset[int]:
    """The addresses of a module's parameters and buffers: resident before training."""
    return frozenset(s[0] for s in map(_storage, [*module.parameters(), *module.buffers()]) if s)


def optimizer_state_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]


class SavedForBackward:
    """A context that notes the storage of every tensor autograd saves for backward (the
    activations a step holds until its backward), without changing what is saved.

    Only addresses and sizes are noted, no tensor is kept: every saved tensor stays alive
    until the backward, so no address is reused while the context is open.
    """

    def __init__(self, exclude: frozenset[int] = frozenset()) -> None:
        self.exclude = exclude  # resident storages (the weights): not the step's memory
        self.storages: dict[int, int] = {}
        self._hooks: saved_tensors_hooks | None = None

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        found = _storage(tensor)
        if found is not None and found[0] not in self.exclude:
            self.storages[found[0]] = found[1]
        return tensor

    def __enter__(self) -> SavedForBackward:
        self._hooks = saved_tensors_hooks(self._pack, lambda tensor: tensor)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._hooks is not None:
            self._hooks.__exit__(*exc)
            self._hooks = None

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())


class TrainingMemory:
    """The peak memory training held beyond what was resident when it started.

    - On a CUDA device: the allocator's peak (``torch.cuda.max_memory_allocated``) from the
      start of fit to the end of training (test excluded), minus what was allocated at the start (the
      weights). Everything allocated on the device counts: activations, gradients, optimizer
      state (a resumed run's too: it is restored after the start), the feature pass's
      batches, validation, and transient buffers.
    - Elsewhere: an account of the tensors training held, taken on the first step of each
      *phase* (the steps the FLOP tally counts): the tensors autograd saved for backward,
      the gradients, the optimizer state after the step, and, for a phase that trains on
      cached features, those features. The weights and buffers are left out (resident
      before training). An account, not the allocator's peak: the backward frees the
      saved tensors as it makes the gradients, and buffers that live inside one operation
      are not seen; but it is measured on the run's own steps and is the same on every run
      of the same config.

    The figure is the largest over phases, in MB; it survives a resume (``state_dict``).
    """

    def __init__(self) -> None:
        self.phases: list[dict] = []  # accounted: {"trainable", "input", "saved", "grads", "optimizer"}
        self.device_peak = 0  # bytes, CUDA
        self._device: torch.device | None = None
        self._baseline = 0
        self._step: tuple[SavedForBackward, dict] | None = None

    def _on_cuda(self) -> bool:
        return self._device is not None and self._device.type == "cuda"

    def fit_starts(self, device: torch.device) -> None:
        """Call right after the device's peak was reset (``reset_peak_memory``)."""
        self._device = device
        if self._on_cuda():
            self._baseline = torch.cuda.memory_allocated(device)

    def step_starts(self, module: nn.Module, what: dict) -> None:
        """The first step of a phase starts: ``what`` says which (trainable mask, input shape)."""
        if not self._on_cuda():
            self._step = (SavedForBackward(resident_storages(module)).__enter__(), what)

    def backward_done(self) -> None:
        if self._step is not None:
            self._step[0].__exit__(None, None, None)

    def step_ends(self, module: nn.Module, optimizers: Iterable[torch.optim.Optimizer]) -> None:
        if self._step is None:
            return
        saved, what = self._step
        saved.__exit__(None, None, None)  # a step without backward (nothing trains)
        self._step = None
        state = [t for optimizer in optimizers for t in optimizer_state_tensors(optimizer)]
        self.phases.append({**what, "saved": saved.bytes,
                            "grads": storage_bytes(p.grad for p in module.parameters()
                                                   if p.grad is not None),
                            "optimizer": storage_bytes(state)})

    def stop(self) -> None:
        """Never leave the hooks installed (a step that raised)."""
        self.backward_done()
        self._step = None

    def training_ends(self) -> int:
        """Read the device's peak (before ``trainer.test``, whose memory is not training's)."""
        if self._on_cuda():
            self.device_peak = max(self.device_peak,
                                   torch.cuda.max_memory_allocated(self._device) - self._baseline)
        return self.device_peak

    def summary(self, feature_bytes: int = 0) -> dict:
        """``train_memory_mb``, how it was measured, and (accounted) each phase's share in MB.

        ``feature_bytes``: the cached features held while head-only phases train on them.
        """
        if self._on_cuda():
            return {"train_memory_mb": self.device_peak / MB, "method": "cuda_allocator"}
        phases = []
        for phase in self.phases:
            # steps on cached features; a phase restored from a checkpoint that lacks the flag
            # (tests/data/run_before_layout) is counted without them
            features = feature_bytes if phase.get("features") else 0
            parts = {"saved": phase["saved"], "grads": phase["grads"],
                     "optimizer": phase["optimizer"], "features": features}
            phases.append({"trainable": phase["trainable"], "input": phase["input"],
                           **{f"{k}_mb": v / MB for k, v in parts.items()},
                           "total_mb": sum(parts.values()) / MB})
        return {"train_memory_mb": max((p["total_mb"] for p in phases), default=0.0),
                "method": "tensor_accounting", "phases": phases}

    def state_dict(self) -> dict:
        return {"phases": self.phases, "device_peak": self.training_ends()}

    def load_state_dict(self, state: dict) -> None:
        self.phases, self.device_peak = list(state["phases"]), state["device_peak"]
