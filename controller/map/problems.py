"""A file refused whole, with every problem in it named (boundaries, risk point imports)."""

from __future__ import annotations

from collections.abc import Sequence

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
