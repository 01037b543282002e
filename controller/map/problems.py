"""A file refused whole, with every problem in it named (boundaries, risk point imports)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

MAX_LISTED = 20  # in the message; ``problems`` keeps them all


class FileProblemsError(ValueError):
    """``problems``: one line per bad row or feature; the message lists the first ones."""

    outcome = "file refused"

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = self.problems[:MAX_LISTED]
        more = len(self.problems) - len(shown)
        text = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
        super().__init__(f"{self.outcome} ({len(self.problems)} problems): {text}")


def feature_list(data: bytes, error: type[FileProblemsError]) -> list[Any]:
    """The ``features`` of a GeoJSON FeatureCollection, or ``error`` saying what it is not."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise error([f"not JSON: {exc}"]) from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise error(['not a GeoJSON FeatureCollection ("type": "FeatureCollection")'])
    features = document.get("features")
    if not isinstance(features, list):
        raise error(["the FeatureCollection has no features list"])
    return features
