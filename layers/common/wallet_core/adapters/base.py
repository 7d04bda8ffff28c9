"""What every repository shares: how it is built on the unit of work, and one row mapper."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from wallet_core.adapters.session import RawSession

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")  # the models are dataclasses: their fields name the columns


@functools.cache
def _field_names(model: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(model))


def from_row(model: type[T], row: Sequence[Any], **convert: Callable[[Any], Any]) -> T:
    """`model` from a row whose first columns are its fields, in the order the model declares them
    (columns after them are left out). `convert` turns a column's value into its field's type (an
    enum)."""
    names = _field_names(model)
    values = dict(zip(names, row[: len(names)], strict=True))
    for name, to_type in convert.items():
        values[name] = to_type(values[name])
    return model(**values)


class Repository:
    """Works on the unit of work's raw session: SQL text, prepared, pipelined, and deferred to the
    commit where nothing reads the result before it."""

    def __init__(self, session: RawSession) -> None:
        self._session = session


@dataclasses.dataclass(frozen=True)
class NewestFirst:
    """A listing newest first, by (created_at, id) of the table aliased `alias`: the first page, and
    the pages after a cursor (the previous page's last created_at and id)."""

    first: str
    after: str

    @classmethod
    def of(cls, query: str, alias: str) -> NewestFirst:
        """`query` ends with its WHERE clause; the order, the cursor and the limit are added here."""
        order = f" ORDER BY {alias}.created_at DESC, {alias}.id DESC LIMIT %(limit)s"
        cursor = f" AND ({alias}.created_at, {alias}.id) < (%(after_at)s, %(after_id)s)"
        return cls(query + order, query + cursor + order)

    def fetch(
        self, session: RawSession, params: dict[str, Any], *, limit: int, after: tuple[Any, Any] | None
    ) -> list[tuple[Any, ...]]:
        if after is None:
            return session.fetch(self.first, {**params, "limit": limit})
        return session.fetch(
            self.after, {**params, "limit": limit, "after_at": after[0], "after_id": after[1]}
        )
