"""One-line config errors from pydantic's: the key path, what was wrong, and the fix.

``devices[0] ('gauge-1').registers[0].adress: unknown key (did you mean 'address'?)``:
a path names list items by their ``name``, an unknown key gets the closest allowed key
(``suggest``), and a typo'd key is found before any other error of its table
(``unknown_key``). Used by ``agent.config``; pure, no I/O.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError


def suggest(given: str, choices: Sequence[str], label: str) -> str:
    close = difflib.get_close_matches(given, list(choices), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" ({label}: {', '.join(repr(c) for c in choices) or 'none'})"


_PRIORITY = {"extra_forbidden": 0, "missing": 2}
_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "string": "a string",
    "bool": "true or false",
    "dict": "a table",
    "model": "a table",
    "list": "an array",
    "tuple": "an array",
}


def explain(
    exc: ValidationError,
    source: str,
    model: type[BaseModel],
    raw: Any,
    prefix: str = "",
) -> str:
    # A typo'd key shows as "unknown key" plus "missing" for the key it meant: report the
    # unknown key (it carries the fix) and do not count the missing one as another error.
    errors = sorted(exc.errors(), key=lambda e: _PRIORITY.get(e["type"], 1))
    error = errors[0]
    loc = tuple(error["loc"])
    path = prefix + format_loc(loc, raw, leading_dot=bool(prefix))
    kind = error["type"]
    given = error.get("input")
    others = len(errors) - 1
    if kind == "extra_forbidden":
        allowed = sorted(keys_at(model, loc[:-1]))
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        if close:
            text = f"unknown key (did you mean {close[0]!r}?)"
            meant = (*loc[:-1], close[0])
            others -= sum(1 for e in errors if e["type"] == "missing" and tuple(e["loc"]) == meant)
        else:
            text = f"unknown key (allowed keys: {', '.join(allowed) or 'none'})"
    elif kind == "missing":
        text = "missing required key"
    elif kind.split("_")[0] in _EXPECTED and kind.endswith(("_type", "_parsing")):
        text = f"expected {_EXPECTED[kind.split('_')[0]]}, got {given!r}"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        text = f"{message}, got {given!r}" if kind != "value_error" else message
    tail = f" (and {others} more error{'s' if others > 1 else ''})" if others > 0 else ""
    return f"{source}: {path or '(top level)'}: {text}{tail}"


def format_loc(loc: tuple[Any, ...], raw: Any, *, leading_dot: bool) -> str:
    """('devices', 0, 'registers', 1, 'adress') -> "devices[0] ('gauge-1').registers[1].adress"."""
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                parts.append(f" ({node['name']!r})")
        else:
            parts.append(f".{item}" if parts or leading_dot else str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def unknown_key(
    model: type[BaseModel], raw: Any, loc: tuple[Any, ...] = ()
) -> tuple[Any, ...] | None:
    """The location of the first key in ``raw`` that ``model`` (or a table below) refuses."""
    annotation = _unwrap(_annotation_at(model, loc))
    if isinstance(raw, dict) and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        allowed = _accepted_keys(annotation)
        for key, value in raw.items():
            if annotation.model_config.get("extra") == "forbid" and key not in allowed:
                return (*loc, key)
            found = unknown_key(model, value, (*loc, key))
            if found is not None:
                return found
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            found = unknown_key(model, item, (*loc, i))
            if found is not None:
                return found
    return None


def _accepted_keys(model: type[BaseModel]) -> set[str]:
    """The keys a table of ``model`` takes (a field's alias when it has one)."""
    return {field.alias or name for name, field in model.model_fields.items()}


def _annotation_at(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    """The type expected at ``loc`` below ``model`` (None when unknown)."""
    annotation: Any = model
    for item in loc:
        annotation = _unwrap(annotation)
        if isinstance(item, int):
            args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
            annotation = args[0] if args else None
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = {f.alias or name: f for name, f in annotation.model_fields.items()}
            field = fields.get(item)
            annotation = field.annotation if field else None
        else:
            return None
    return annotation


def keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> set[str]:
    """The keys a table at ``loc`` below ``model`` accepts (empty when unknown)."""
    annotation = _unwrap(_annotation_at(model, loc))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _accepted_keys(annotation)
    return set()


def _unwrap(annotation: Any) -> Any:
    """Strip Optional[...] (X | None) and Annotated[...] down to the type that has fields."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        else:
            return annotation
