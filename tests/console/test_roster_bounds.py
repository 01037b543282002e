"""The duty roster page bounds what it sends as the API bounds it: its table of bounds
(``controller/console/js/roster-edit.js``) must equal the API's own, or the page would send
what the API refuses, or refuse what it takes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from controller.config_types import PLACE_PATTERN, Place
from controller.notify import config as notify_config
from controller.notify.config import Contact, Person, RosterBody

EDIT_MODULE = Path(notify_config.__file__).parents[1] / "console" / "js" / "roster-edit.js"


def page_bounds() -> dict[str, Any]:
    """``export const BOUNDS = {...};`` is JSON inside the module."""
    found = re.search(r"export const BOUNDS = (\{.*?\n\});", EDIT_MODULE.read_text(), re.S)
    assert found, f"no BOUNDS in {EDIT_MODULE}"
    bounds: dict[str, Any] = json.loads(found.group(1))
    return bounds


def as_python_pattern(html_pattern: str) -> str:
    """An HTML ``pattern`` (anchored, ``v`` flag: a ``-`` in a class is escaped) as the
    pydantic one."""
    return "^" + html_pattern.replace("\\-", "-") + "$"


def field_schema(model: Any, name: str) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema()["properties"][name]
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return {**schema, **option}
    return schema


def test_the_pages_bounds_are_the_apis() -> None:
    page = page_bounds()
    assert page["people"] == notify_config.MAX_PEOPLE_PER_ROSTER
    assert page["shifts"] == notify_config.MAX_SHIFTS_PER_ROSTER
    assert page["overrides"] == notify_config.MAX_OVERRIDES_PER_ROSTER
    assert page["contacts_per_person"] == notify_config.MAX_CONTACTS_PER_PERSON
    assert as_python_pattern(page["person_id_pattern"]) == field_schema(Person, "id")["pattern"]
    assert page["person_name_chars"] == field_schema(Person, "name")["maxLength"]
    assert page["contact_to_chars"] == field_schema(Contact, "to")["maxLength"]
    assert page["roster_name_chars"] == field_schema(RosterBody, "name")["maxLength"]
    assert page["timezone_chars"] == field_schema(RosterBody, "timezone")["maxLength"]
    assert as_python_pattern(page["place_pattern"]) == PLACE_PATTERN
    assert page["place_chars"] == TypeAdapter(Place).json_schema()["maxLength"]
    layers = {str(d): [layer.value for layer in allowed]
              for d, allowed in notify_config.LAYERS_AT_DEPTH.items()}  # fmt: skip
    assert page["layers_at_depth"] == layers


def test_an_override_of_a_year_and_a_day_is_the_longest_the_api_takes() -> None:
    """The page refuses an override when its whole days pass ``override_days``, as the API."""
    days = page_bounds()["override_days"]
    person = {"id": "li", "name": "Li", "contacts": [{"channel": "hook", "to": "li"}]}

    def body(end: str) -> dict[str, Any]:
        override = {"person": "li", "start": "2026-01-01T00:00:00", "end": end}
        return {"people": [person], "overrides": [override]}

    longest = f"2027-01-{days - 365 + 1:02d}T23:59:00"  # 366 days and 23 h 59 min
    RosterBody.model_validate(body(longest))
    with pytest.raises(ValidationError, match="longer than a year"):
        RosterBody.model_validate(body(f"2027-01-{days - 365 + 2:02d}T00:00:00"))
