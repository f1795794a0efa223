"""The data module a Trainer runs with, as ftbench's own class.

Lightning sets ``trainer.datamodule`` when ``fit`` or ``test`` starts; its ``Trainer`` class
does not declare the attribute. The module and the callbacks of this package read it through
``data_module``, so that the type checker follows every member of the data module they use.
"""

from __future__ import annotations

from lightning import Trainer

from ftbench.data.datamodule import FineTuneDataModule


def data_module(trainer: Trainer) -> FineTuneDataModule:
    dm = getattr(trainer, "datamodule", None)
    if not isinstance(dm, FineTuneDataModule):
        raise TypeError(f"the Trainer runs with {type(dm).__name__}, not a FineTuneDataModule")
    return dm
