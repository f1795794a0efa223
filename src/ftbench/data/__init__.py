"""Data: dataset sources, their splits and sizes, the shifted test sets, and the LightningDataModule."""

from ftbench.data.datamodule import FineTuneDataModule
from ftbench.data.sources import SOURCES, Splits, load_splits

__all__ = ["SOURCES", "FineTuneDataModule", "Splits", "load_splits"]
