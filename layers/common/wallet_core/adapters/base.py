"""What every repository shares: how it is built on the unit of work, and one row mapper."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection

from wallet_core.adapters.session import RawSession

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")  # the models are dataclasses: their fields name the columns


@functools.cache
def _field_names(model: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(model))


def from_row(model: type[T], row: Sequence[Any], **convert: Callable[[Any], Any]) -> T:
    """`model` from a row that has a column for each of its fields: by name when the row has names
    (SQLAlchemy), else by position in the field order (the raw driver's tuples; columns after the
    fields are left out). `convert` turns a column's value into its field's type (an enum)."""
    names = _field_names(model)
    mapping = getattr(row, "_mapping", None)
    values = (
        {name: mapping[name] for name in names}
        if mapping is not None
        else dict(zip(names, row[: len(names)], strict=True))
    )
    for name, to_type in convert.items():
        values[name] = to_type(values[name])
    return model(**values)


class Repository:
    """Works on the unit of work's connection: SQLAlchemy Core for most statements, the raw session
    (prepared, pipelined, deferred to the commit) for those of the hot paths."""

    def __init__(self, connection: Connection, session: RawSession) -> None:
        self._connection = connection
        self._session = session
