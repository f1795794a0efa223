"""Memory figures of a run: the process's peak, reset per run so that a multirun's jobs
(which share one process) each get their own."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

_PROC_STATUS = Path("/proc/self/status")


def reset_peak_memory(device: torch.device) -> None:
    """Start the peak afresh."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif _PROC_STATUS.exists():
        try:
            Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM, the peak RSS
        except OSError:
            pass


def peak_memory_mb(device: torch.device) -> float:
    """CUDA peak allocated on GPU; the process's peak resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if _PROC_STATUS.exists():
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes vs KiB
