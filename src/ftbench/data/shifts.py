"""Shifted test sets: the test split corrupted at a severity 1-5, the same images in every run.

A corruption is a ``torchvision.transforms.v2`` transform on a ``uint8`` image at the model's
input size: after the test transform's resize and crop, before the conversion to float and the
normalisation, so a severity means the same on 32 px digits and on 224 px photos. Severity
picks the transform's parameter from a table of five (CIFAR-10-C / ImageNet-C style):

| name | parameter | severity 1 .. 5 |
|---|---|---|
| ``gaussian_noise`` | σ of the added noise, pixel values in [0, 1] | 0.04, 0.08, 0.12, 0.18, 0.26 |
| ``gaussian_blur`` | σ in pixels per 32 px of image side | 0.5, 0.75, 1.0, 1.25, 1.5 |
| ``contrast`` | contrast factor (1 = unchanged) | 0.75, 0.5, 0.4, 0.3, 0.15 |
| ``jpeg`` | JPEG quality | 80, 50, 30, 15, 7 |
| ``rotate`` | rotation in degrees, sign drawn per image | 8, 16, 24, 32, 40 |

Random draws (the noise, a rotation's sign) come from a seed of the corruption's name, its
severity and the image's index, under ``torch.random.fork_rng``: every strategy and seed sees
exactly the same images, whatever the batching, and the run's own random state is untouched.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from omegaconf import ListConfig
from torch.utils.data import Dataset
from torchvision.transforms import v2

from ftbench.data.sized import size_of
from ftbench.run.failures import UserError

SEVERITIES = (1, 2, 3, 4, 5)
OOD_KEY = "ood_root"  # the user's own shifted folder, next to the corruptions in metrics.shift
MEAN_KEY = "mean"  # the mean over the corruptions (the folder is not in it)


@dataclass(frozen=True)
class Corruption:
    values: tuple[float, ...]  # the parameter at severity 1..5
    build: Callable[[float, int], v2.Transform]  # (parameter, image side in px) -> transform


def _gaussian_noise(sigma: float, side: int) -> v2.Transform:
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.GaussianNoise(sigma=sigma),
                       v2.ToDtype(torch.uint8, scale=True)])


def _gaussian_blur(sigma_per_32px: float, side: int) -> v2.Transform:
    sigma = sigma_per_32px * side / 32
    return v2.GaussianBlur(2 * math.ceil(3 * sigma) + 1, sigma=(sigma, sigma))


def _contrast(factor: float, side: int) -> v2.Transform:
    return v2.ColorJitter(contrast=(factor, factor))


def _jpeg(quality: float, side: int) -> v2.Transform:
    return v2.JPEG(quality=int(quality))


def _rotate(degrees: float, side: int) -> v2.Transform:
    return v2.RandomChoice([v2.RandomRotation((d, d), interpolation=v2.InterpolationMode.BILINEAR)
                            for d in (degrees, -degrees)])


# Add a corruption with one entry: its five parameters and a builder of the v2 transform.
CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": Corruption((0.04, 0.08, 0.12, 0.18, 0.26), _gaussian_noise),
    "gaussian_blur": Corruption((0.5, 0.75, 1.0, 1.25, 1.5), _gaussian_blur),
    "contrast": Corruption((0.75, 0.5, 0.4, 0.3, 0.15), _contrast),
    "jpeg": Corruption((80, 50, 30, 15, 7), _jpeg),
    "rotate": Corruption((8, 16, 24, 32, 40), _rotate),
}


@dataclass(frozen=True)
class Shift:
    """One corruption at one severity: ``gaussian_noise:3`` in the config and in the results."""

    name: str
    severity: int

    @property
    def key(self) -> str:
        return f"{self.name}:{self.severity}"

    def transform(self, side: int) -> v2.Transform:
        corruption = CORRUPTIONS[self.name]
        return corruption.build(corruption.values[self.severity - 1], side)

    @property
    def seed(self) -> int:
        """Fixed by the name and severity alone; image i draws from ``seed + i``."""
        return int.from_bytes(hashlib.sha256(self.key.encode()).digest()[:7], "big")


def parse_shifts(value: object, setting: str = "eval.shifts") -> list[Shift]:
    """``["gaussian_noise:3", ...]`` -> shifts; a one-line ``UserError`` for a bad entry."""
    form = (f"a list of name:severity, name one of {', '.join(CORRUPTIONS)}, severity "
            f"{SEVERITIES[0]}..{SEVERITIES[-1]} (e.g. {setting}=[gaussian_noise:3,jpeg:5]; [] for none)")
    if not isinstance(value, ListConfig | list | tuple):
        raise UserError(f"{setting}={value!r} is not valid; allowed: {form}")
    shifts: list[Shift] = []
    for i, entry in enumerate(value):
        name, _, severity = str(entry).partition(":")
        if (not isinstance(entry, str) or name not in CORRUPTIONS
                or severity not in {str(s) for s in SEVERITIES}):
            raise UserError(f"{setting}[{i}]={entry!r} is not valid; allowed: {form}")
        shift = Shift(name, int(severity))
        if shift in shifts:
            raise UserError(f"{setting}[{i}]={entry!r} is listed twice; allowed: each shift once")
        shifts.append(shift)
    return shifts


def corrupt(image: torch.Tensor, transform: v2.Transform, seed: int) -> torch.Tensor:
    """``transform(image)`` with the CPU generator seeded to ``seed``, restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return transform(image)


class ShiftedImages(Dataset):
    """Items of ``base`` (``uint8`` images at the model's input size), corrupted by ``shift``,
    then made model inputs by ``finish`` (float conversion and normalisation)."""

    def __init__(self, base: Dataset, shift: Shift, side: int,
                 finish: Callable[[torch.Tensor], torch.Tensor]):
        self.base, self.shift, self.finish = base, shift, finish
        self.transform = shift.transform(side)

    def __len__(self) -> int:
        return size_of(self.base)

    def __getitem__(self, index: int):
        image, label = self.base[index]
        return self.finish(corrupt(image, self.transform, self.shift.seed + index)), label


def with_mean(accuracy: dict[str, float]) -> dict[str, float | None]:
    """Accuracy per shifted set, and ``mean``: over the corruptions, the user's folder left out
    (so that the mean compares across runs with and without one)."""
    corruptions = [acc for key, acc in accuracy.items() if key != OOD_KEY]
    mean = sum(corruptions) / len(corruptions) if corruptions else None
    return {**accuracy, MEAN_KEY: mean}
