"""Long-lived resources with ``start()`` and ``stop()`` as context managers.

``with Agent(config) as agent:`` starts the agent and stops it on the way out, whatever
happened inside (STYLE.md: every long-lived resource is a context manager). A class that
has ``start`` and ``stop`` inherits ``Lifecycle`` instead of writing the same two methods.
"""

from __future__ import annotations

from typing import Self


class Lifecycle:
    """``__enter__`` calls ``start()`` and returns the object; ``__exit__`` calls ``stop()``."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
