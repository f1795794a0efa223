"""Data: dataset sources, the LightningDataModule, and feature caching while the backbone is frozen."""

from ftbench.data.datamodule import FineTuneDataModule
from ftbench.data.sources import SOURCES, Splits, load_splits

__all__ = ["SOURCES", "FineTuneDataModule", "Splits", "load_splits"]
