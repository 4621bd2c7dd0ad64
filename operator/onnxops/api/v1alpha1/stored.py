"""Lenient reads of what a status holds as stored: a block (an object) or a list of entries, parsed into
its api/ model, never raising.

The operator reads back what it wrote, but a stored status may hold what it could not have written (an
object edited by hand, or stored before the schema refused it). Such a value is read the way the dict
readers read it: a block that is not an object is absent; a field (or one entry of a map or a list, e.g.
one condition) that does not parse is left out and read as unset; a block whose required field is missing
or does not parse is absent; a list entry that does not parse is left out. The block's one writer then
writes it anew.

Hand-written (pydantic has no "drop what does not validate" mode): a loop over ``ValidationError.errors()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from pydantic import BaseModel, ValidationError

from .common import Condition, KubeModel

M = TypeVar("M", bound=BaseModel)


def read_block(model: type[M], raw: Any) -> M | None:
    """``raw`` (a stored status block) as ``model``: None when absent or not an object, or when a field the
    model requires is missing or does not parse; any other field (or one entry of a map or a list) that
    does not parse is left out."""
    if not isinstance(raw, Mapping):
        return None
    data: dict[str, Any] = {str(k): v for k, v in raw.items()}
    while True:  # each pass leaves something out, or stops
        try:
            return model.model_validate(data)
        except ValidationError as e:
            before = repr(data)
            _drop(data, [err["loc"] for err in e.errors()])
            if repr(data) == before:  # nothing left to drop: a required field is missing
                break
    try:
        return model.model_validate({})
    except ValidationError:
        return None


def read_list(model: type[M], raw: Any) -> list[M] | None:
    """``raw`` (a stored list of entries) as ``model`` entries: None when absent or not a list; an entry
    that does not parse (``read_block`` gives None) is left out."""
    if not isinstance(raw, list):
        return None
    return [m for m in (read_block(model, e) for e in raw) if m is not None]


def as_stored(models: Iterable[M]) -> list[dict[str, Any]]:
    """Entries read with :func:`read_list` (or a model's list field) for code that takes the stored dicts
    (e.g. the ``api/conditions`` helpers): each with exactly the fields it was stored with, none added."""
    return [m.model_dump(by_alias=True, exclude_unset=True, mode="json") for m in models]


class StoredStatus(KubeModel):
    """Base of a kind's status model that holds ``conditions`` (each subclass declares the field, in its
    own place in the schema): the lenient read of the stored status, and its conditions as stored."""

    if TYPE_CHECKING:
        conditions: list[Condition]

    @classmethod
    def read(cls, status: Mapping[str, Any] | None) -> Self:
        """A stored status, leniently (:func:`read_block`): a field, a map or list entry or a condition that
        does not parse is left out (read as unset); never raises."""
        return read_block(cls, status) or cls()

    def conditions_as_stored(self) -> list[dict[str, Any]]:
        """``conditions`` for the ``api/conditions`` helpers: each as stored (:func:`as_stored`)."""
        return as_stored(self.conditions)

    def condition(self, type_: str) -> Condition | None:
        """The condition of that type, or None."""
        return next((c for c in self.conditions if c.type == type_), None)


def _drop(data: dict[str, Any], locs: list[tuple[int | str, ...]]) -> None:
    """Leave out what each of ``locs`` points at: the entry of a map field (``breaches.1``) or of a list
    field (``conditions.0``), else the field."""
    entries: dict[str, set[int]] = {}
    for loc in locs:
        if not loc or loc[0] not in data:
            continue
        key, field = str(loc[0]), data[loc[0]]
        if len(loc) >= 2 and isinstance(field, Mapping) and loc[1] in field:
            data[key] = {k: v for k, v in field.items() if k != loc[1]}
        elif len(loc) >= 2 and isinstance(field, list) and isinstance(loc[1], int) and loc[1] < len(field):
            entries.setdefault(key, set()).add(loc[1])  # left out together: the indexes stay valid
        else:
            del data[key]
    for key, drop in entries.items():
        if isinstance(data.get(key), list):
            data[key] = [e for i, e in enumerate(data[key]) if i not in drop]
