"""The pieces every config section is made of: a strict, frozen section model and the place
path. Apart from ``controller/config.py`` so that a package's own config module (such as
``controller/notify/config.py``) can use them while ``ControllerConfig`` holds its section.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# A place is a slash path of lower-case labels, city/district/street[/community]/grid: one
# to five levels (a grid sits directly under its street, or under a community).
PLACE_PATTERN = r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*){0,4}$"
Place = Annotated[str, Field(pattern=PLACE_PATTERN, max_length=255)]


class Section(BaseModel):
    """A config section: unknown keys refused, frozen, no inf or nan."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
