"""The kinds of value a ``result.json`` holds, each with its bounds and its one-line reason.

A result is read from files anyone who can write into a sweep folder controls, and written by
the run itself. Both go through the same declared types, in one of two modes:

- reading (the default): a *scalar figure* that is no finite number within ``MAX_MAGNITUDE``
  (a cost, a loss, a count, a flag) counts as absent (``None``), so that one odd figure does not
  hide the rest of a run; a *structure* the readers walk (an object of numbers, a list of names,
  a table of counts) of another shape makes the record no result, with the reason.
- writing (``context=WRITING``): anything that is not what the field declares is a bug of the
  writer and raises; only NaN and infinity become ``None`` (JSON has neither).

``Part``, the base of every model of the schema, picks the mode: built by keyword (only a writer
does: ``Cost(train_flops=...)``, a misnamed field a type error) it validates as written;
``model_validate`` (the readers) reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

# no measurement comes near this: a larger figure is taken for none, so that sums, means and
# spreads over any number of runs stay finite
MAX_MAGNITUDE = 1e100
WRITING = {"writing": True}  # the validation context of the writer

T = TypeVar("T")
P = TypeVar("P", bound="Part")


def number(value: object) -> float | None:
    """``value`` as a figure, or None if it is none: not a number, not finite, or beyond
    ``MAX_MAGNITUDE``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and abs(value) <= MAX_MAGNITUDE else None


def writing(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get("writing"))


def shown(value: object) -> str:
    """A value in a reason: its repr, cut short (the value may be megabytes of text)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unset_if_not_finite(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_MAGNITUDE


# -- scalars: absent when they are not one (reading), an error (writing) ------------------------
def _scalar(kind: str, accept: Callable[[object], object | None]) -> BeforeValidator:
    def check(value: object, info: ValidationInfo) -> object:
        value = _unset_if_not_finite(value)
        if value is None:
            return None
        accepted = accept(value)
        if accepted is None and writing(info):
            raise PydanticCustomError("figure", "is {value}, not {kind}",
                                      {"value": shown(value), "kind": kind})
        return accepted

    return BeforeValidator(check)


Figure = Annotated[float | None, _scalar("a number", number)]
"""A measurement: a finite number within ``MAX_MAGNITUDE``."""
Amount = Annotated[int | None, _scalar("a count", lambda v: v if _is_count(v) else None)]
"""A number of things (parameters, images, threads)."""
Flag = Annotated[bool | None, _scalar("true or false", lambda v: v if isinstance(v, bool) else None)]


# -- structures: refused with the reason when they have another shape ---------------------------
def _shaped(shape: str, fits: Callable[[Any], bool]) -> BeforeValidator:
    def check(value: object, info: ValidationInfo) -> object:
        if writing(info):
            value = _finite_or_none(value)
        if value is not None and not fits(value):
            raise PydanticCustomError("shape", "is not {shape}", {"shape": shape})
        return value

    return BeforeValidator(check)


def _finite_or_none(value: object) -> object:
    """NaN and infinity written as null, inside lists and objects too (what the writer measured
    as undefined: the accuracy of a class the test split lacks)."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return _unset_if_not_finite(value)


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(v is None or number(v) is not None for v in value)


def _numbers_by_name(value: Any) -> bool:
    return isinstance(value, dict) and all(v is None or number(v) is not None for v in value.values())


def _names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _counts(value: Any) -> bool:
    return isinstance(value, list) and all(_is_count(v) for v in value)


def _counts_table(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(line, list) and len(line) == len(value) and _counts(line) for line in value)


def _texts_by_name(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


Number = Annotated[float | None, _shaped("a number", lambda v: number(v) is not None)]
Integer = Annotated[int | None, _shaped("an integer", lambda v: isinstance(v, int) and type(v) is not bool)]
Count = Annotated[int | None, _shaped("a count", _is_count)]
Text = Annotated[str | None, _shaped("a string", lambda v: isinstance(v, str))]
Name = Annotated[str | None, _shaped("a name", lambda v: isinstance(v, str))]
Names = Annotated[list[str] | None, _shaped("a list of names", _names)]
Numbers = Annotated[list[float | None] | None, _shaped("a list of numbers", _numbers)]
Counts = Annotated[list[int] | None, _shaped("a list of counts", _counts)]
NumbersByName = Annotated[dict[str, float | None] | None, _shaped("an object of numbers", _numbers_by_name)]
TextsByName = Annotated[dict[str, str] | None, _shaped("an object of strings", _texts_by_name)]
CountsTable = Annotated[list[list[int]] | None, _shaped("a square table of counts", _counts_table)]


# -- parts: an object or a list where the record has one ------------------------------------------
def _found(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _object(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    if not isinstance(value, dict | BaseModel):  # a model: a part a writer built
        raise PydanticCustomError("part", "is {found}, not an object", {"found": _found(value)})
    return handler(value)


def _entries(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    if not isinstance(value, list):
        raise PydanticCustomError("part", "is {found}, not a list", {"found": _found(value)})
    if not all(isinstance(entry, dict | BaseModel) for entry in value):
        raise PydanticCustomError("part", "holds an entry that is not an object")
    return handler(value)


Object = Annotated[T, WrapValidator(_object)]
"""A part that is an object (a nested model, or free-form like the config)."""
Entries = Annotated[list[T], WrapValidator(_entries)]
"""A part that is a list of objects (the history, the layer groups)."""


class Part(BaseModel):
    """Every part of a result: only declared fields, no silent coercion, read-only."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True)

    def __init__(self, /, **data: Any) -> None:
        """By keyword, only a writer builds a part: validated as written (a wrong value raises)."""
        self.__pydantic_validator__.validate_python(data, self_instance=self, context=WRITING)

    # marked as pydantic's own: pydantic would otherwise call it from model_validate too (its
    # "custom init"), and the readers would read in the writer's mode
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def merged(self: P, other: P) -> P:
        """The fields set in either, ``other``'s where both are (built anew: validated as written)."""
        return type(self)(**{**self.model_dump(by_alias=True, exclude_unset=True),
                             **other.model_dump(by_alias=True, exclude_unset=True)})
