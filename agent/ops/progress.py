"""A progress line on stderr for long operations, rewritten in place, shown on a TTY only
(a script or a log file gets the results, not the carriage returns)."""

from __future__ import annotations

from typing import TextIO


class StatusLine:
    """``show(text)`` rewrites one line; ``clear()`` erases it before results are printed."""

    def __init__(self, stream: TextIO, *, enabled: bool | None = None) -> None:
        self._stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self._width = 0

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        self._width = max(self._width, len(text))
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()

    def clear(self) -> None:
        if not self.enabled or not self._width:
            return
        self._stream.write("\r" + " " * self._width + "\r")
        self._stream.flush()
        self._width = 0
