"""Typed reading of JSON documents written by deployer (state, journal records, kinds' state
forms): each helper checks one field and raises ``Invalid`` naming where it is."""
from __future__ import annotations

from typing import Any


class Invalid(Exception):
    """A field of a state document or journal record is wrong."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}" if where else what)


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def json_kind(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return f"the number {value!r}"
        case str():
            return "a string"
        case list():
            return "an array"
        case _:
            return "an object"


def object_fields(value: object, where: str, required: tuple[str, ...] = (),
            optional: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A JSON object with ``required`` keys; with ``optional`` given, no keys beyond both."""
    if not isinstance(value, dict):
        raise Invalid(where, f"expected an object, got {json_kind(value)}")
    for key in required:
        if key not in value:
            raise Invalid(join(where, key), "missing")
    if optional is not None or required:
        allowed = set(required) | set(optional or ())
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise Invalid(join(where, unknown[0]), "unknown field")
    return value


def array(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(where, f"expected an array, got {json_kind(value)}")
    return value


def string(value: object, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise Invalid(where, f"expected a string, got {json_kind(value)}")
    if not value and not empty:
        raise Invalid(where, "must not be empty")
    return value


def optional_string(value: object, where: str) -> str | None:
    return None if value is None else string(value, where)


def count(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Invalid(where, f"expected a whole number >= 0, got {json_kind(value)}")
    return value
