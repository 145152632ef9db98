"""Typed reads of a JSON request's members, each refusal raised as the service's own error.

    read = Reader(params, validation)      # validation(message) -> the service's exception
    name = read.string("Name"); limit = read.opt_int("Limit")

An adapter's handlers take the Reader itself: `reading(handler, validation)` is the registry's handler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from trailkeeper.api.registry import Ctx, Handler, Params

if TYPE_CHECKING:
    from trailkeeper.identity import Principal

ReadingHandler = Callable[[Ctx, "Principal", "Reader"], dict[str, Any]]


class Reader:
    def __init__(self, params: Mapping[str, Any], invalid: Callable[[str], Exception]) -> None:
        self.params = params
        self.invalid = invalid

    def string(self, name: str) -> str:
        value = self.params.get(name)
        if not isinstance(value, str):
            raise self.invalid(f"{name} is required and must be a string.")
        return value

    def opt_string(self, name: str) -> str | None:
        value = self.params.get(name)
        if value is not None and not isinstance(value, str):
            raise self.invalid(f"{name} must be a string.")
        return value

    def opt_int(self, name: str) -> int | None:
        value = self.params.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.invalid(f"{name} must be an integer.")
        return value

    def int_or(self, name: str, default: int) -> int:
        value = self.opt_int(name)
        return default if value is None else value

    def opt_bool(self, name: str) -> bool | None:
        value = self.params.get(name)
        if value is not None and not isinstance(value, bool):
            raise self.invalid(f"{name} must be true or false.")
        return value

    def strings(self, name: str) -> list[str]:
        value = self.params.get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.invalid(f"{name} is required and must be a list of strings.")
        return value

    def opt_strings(self, name: str) -> list[str] | None:
        return None if self.params.get(name) is None else self.strings(name)

    def str_map(self, name: str) -> dict[str, str] | None:
        """A JSON object of strings to strings (absent: None)."""
        value = self.params.get(name)
        if value is None:
            return None
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise self.invalid(f"{name} must be a map of strings to strings.")
        return value

    def objects(self, name: str) -> list[Mapping[str, Any]]:
        value = self.params.get(name)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.invalid(f"{name} is required and must be a list of objects.")
        return value

    def tags(self, name: str) -> dict[str, str]:
        """A `[{"Key": k, "Value": v}]` list (absent: no tags)."""
        if self.params.get(name) is None:
            return {}
        out: dict[str, str] = {}
        for tag in self.objects(name):
            key, value = tag.get("Key"), tag.get("Value")
            if not isinstance(key, str) or not isinstance(value, str):
                raise self.invalid(f"{name}: each tag needs a string Key and a string Value.")
            out[key] = value
        return out


def reading(handler: ReadingHandler[Ctx], invalid: Callable[[str], Exception]) -> Handler[Ctx]:
    """The registry's handler for one that reads its members through a Reader raising `invalid`."""
    def run(context: Ctx, principal: Principal, params: Params) -> dict[str, Any]:
        return handler(context, principal, Reader(params, invalid))
    return run
