"""pydantic's errors as people read them: the key path, what was wrong, and the fix.

The one formatter of validation errors: the agent's config (agent.toml and pushed configs),
the driver registry's device configs, the controller's config, command arguments and the
API's 422 bodies all say the same thing for the same mistake:

``devices[0] ('gauge-1').registers[0].adress: unknown key (did you mean 'address'?)``

A path names list items by their ``name``; an unknown key gets the closest
allowed key (``suggest``), and is reported before any other error (a typo'd key also shows
as "missing" for the key it meant: that twin is not counted). ``unknown_key`` finds the
first key a model refuses before any validator runs. Pure, no I/O.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ValidationError

# The key whose value names a list item in a path: devices[0] ('gauge-1').
LABEL_KEYS = ("name",)


def suggest(given: str, choices: Sequence[str], label: str) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, else `` (label: a, b)``."""
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
    model: type[BaseModel] | None,
    raw: Any,
    *,
    prefix: str = "",
    patterns: Mapping[str, str] | None = None,
) -> str:
    """The first error on one line, ``source: path: what (and N more errors)``."""
    found = problems(exc, model, raw, prefix=prefix, patterns=patterns)
    others = len(found) - 1
    tail = f" (and {others} more error{'s' if others > 1 else ''})" if others > 0 else ""
    return f"{source}: {found[0]}{tail}"


def problems(
    exc: ValidationError,
    model: type[BaseModel] | None = None,
    raw: Any = None,
    *,
    prefix: str = "",
    patterns: Mapping[str, str] | None = None,
) -> list[str]:
    """Every error as ``path: what``, unknown keys first. ``model`` and ``raw`` (the input)
    give "did you mean" and list items' names; ``patterns`` maps a regex to what a person
    calls it (``"a place path like 'cq/yuzhong'"``)."""
    found: list[str] = []
    for error in ordered(exc.errors(), model):
        path = prefix + format_loc(tuple(error["loc"]), raw, leading_dot=bool(prefix))
        text = describe(error, model, patterns)
        # A model's own check (no path) already says what it is about.
        found.append(f"{path}: {text}" if path else text)
    return found


E = TypeVar("E", bound=Mapping[str, Any])


def ordered(errors: Iterable[E], model: type[BaseModel] | None) -> list[E]:
    """Unknown keys first, missing keys last; a missing key that an unknown key's "did you
    mean" names is dropped (it is the same mistake, and the unknown key carries the fix)."""
    errors = sorted(errors, key=lambda e: _PRIORITY.get(e["type"], 1))
    meant = {
        (*tuple(e["loc"])[:-1], close)
        for e in errors
        if e["type"] == "extra_forbidden" and (close := closest_key(model, tuple(e["loc"])))
    }
    return [e for e in errors if not (e["type"] == "missing" and tuple(e["loc"]) in meant)]


def closest_key(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str | None:
    """The allowed key closest to the unknown key at ``loc`` (None: none is close)."""
    if model is None or not loc:
        return None
    close = difflib.get_close_matches(str(loc[-1]), sorted(keys_at(model, loc[:-1])), n=1)
    return close[0] if close else None


def describe(
    error: Mapping[str, Any],  # one of pydantic's ErrorDetails
    model: type[BaseModel] | None = None,
    patterns: Mapping[str, str] | None = None,
) -> str:
    """What was wrong, without the path: ``unknown key (did you mean 'host'?)``,
    ``missing required key``, ``expected an integer, got 'abc'``, a validator's message."""
    kind = error["type"]
    loc = tuple(error["loc"])
    given = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = sorted(keys_at(model, loc[:-1])) if model is not None else []
        close = closest_key(model, loc)
        if close is not None:
            return f"unknown key (did you mean {close!r}?)"
        return f"unknown key (allowed keys: {', '.join(allowed)})" if allowed else "unknown key"
    if kind == "missing":
        return "missing required key"
    if kind.split("_")[0] in _EXPECTED and kind.endswith(("_type", "_parsing")):
        return f"expected {_EXPECTED[kind.split('_')[0]]}, got {given!r}"
    if kind == "string_pattern_mismatch" and patterns and ctx.get("pattern") in patterns:
        return f"expected {patterns[str(ctx['pattern'])]}, got {given!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error":
        return message
    if kind in ("enum", "literal_error") and isinstance(given, str):
        choices = [str(c) for c in _choices(ctx)]
        # Stricter than for keys: 'u64' is no typo of 'u16'.
        hint = difflib.get_close_matches(given, choices, n=1, cutoff=0.75)
        if hint:
            return f"{message}, got {given!r} (did you mean {hint[0]!r}?)"
    return f"{message}, got {given!r}"


def _choices(ctx: Mapping[str, Any]) -> list[str]:
    """The choices of an enum or literal error, from its ``expected`` text."""
    expected = str(ctx.get("expected", ""))
    return [c.strip(" '") for c in expected.replace(" or ", ",").split(",") if c.strip(" '")]


def format_loc(loc: tuple[Any, ...], raw: Any, *, leading_dot: bool) -> str:
    """('devices', 0, 'registers', 1, 'adress') -> "devices[0] ('gauge-1').registers[1].adress"."""
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            fits = isinstance(node, list | tuple) and -len(node) <= item < len(node)
            node = node[item] if fits else None
            label = next(
                (node[k] for k in LABEL_KEYS if isinstance(node, dict) and k in node), None
            )
            if isinstance(label, str):
                parts.append(f" ({label!r})")
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


def keys_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> set[str]:
    """The keys a table at ``loc`` below ``model`` accepts (empty when unknown)."""
    if model is None:
        return set()
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
