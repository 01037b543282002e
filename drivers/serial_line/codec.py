"""Pure framing of ASCII sentences from a byte stream, apart from any I/O.

Two line formats devices use:

- NMEA-style ``$TYPE,field,...*CS\\r\\n``: CS is the XOR of the bytes between ``$`` and
  ``*``, as two hex digits (``SentenceFramer``);
- bare ``KEY=value\\r\\n`` lines, as free-running inclinometers send
  ``X=+00.430\\r\\nY=-00.084\\r\\n`` (``KeyValueFramer``).

A framer is fed whatever bytes arrived (any split: partial lines carry over to the next
feed) and returns the complete, valid sentences. It counts what it threw away (noise
bytes, wrong checksums, over-long lines, sentences cut short by a new ``$``) and never
lets junk cost the next good sentence: a ``$`` always starts afresh, and the buffer is
bounded (``max_length``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_MAX_LENGTH = 256  # bytes of one line, without its CRLF (NMEA itself allows 82)


def checksum(body: bytes) -> int:
    """XOR of the bytes of ``body`` (what lies between ``$`` and ``*``)."""
    value = 0
    for byte in body:
        value ^= byte
    return value


def frame_sentence(body: str) -> bytes:
    """``body`` as a sentence on the wire: ``$body*CS\\r\\n``."""
    raw = body.encode("ascii")
    return b"$" + raw + f"*{checksum(raw):02X}\r\n".encode()


@dataclass(frozen=True, slots=True)
class Sentence:
    """A checked sentence: ``$GAS,1,12.5,0*CS`` is type "GAS", fields ("1", "12.5", "0")."""

    type: str
    fields: tuple[str, ...]


@dataclass(slots=True)
class FramerStats:
    sentences: int = 0
    noise_bytes: int = 0  # bytes outside any sentence (line noise, junk between lines)
    bad_checksums: int = 0  # whole sentences whose checksum is wrong or missing
    overlong: int = 0  # lines longer than max_length, dropped
    cut_short: int = 0  # sentences abandoned because a new "$" began

    def copy(self) -> FramerStats:
        return FramerStats(
            self.sentences, self.noise_bytes, self.bad_checksums, self.overlong, self.cut_short
        )


class SentenceFramer:
    """Incremental framer of ``$...*CS`` sentences; see the module docstring."""

    def __init__(self, *, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        self.max_length = max_length
        self.stats = FramerStats()
        self._line: bytearray | None = None  # None: outside a sentence, skipping to "$"

    def feed(self, data: bytes) -> list[Sentence]:
        sentences: list[Sentence] = []
        for byte in data:
            if byte == 0x24:  # "$"
                if self._line is not None and len(self._line) > 0:
                    self.stats.cut_short += 1
                self._line = bytearray()
            elif self._line is None:
                if byte not in (0x0D, 0x0A):
                    self.stats.noise_bytes += 1
            elif byte == 0x0A:  # "\n" ends the sentence
                line, self._line = bytes(self._line).rstrip(b"\r"), None
                sentence = self._check(line)
                if sentence is not None:
                    sentences.append(sentence)
            else:
                self._line.append(byte)
                if len(self._line) > self.max_length:
                    self.stats.overlong += 1
                    self._line = None
        return sentences

    def _check(self, line: bytes) -> Sentence | None:
        star = line.rfind(b"*")
        try:
            ok = (
                star >= 0
                and len(line) - star == 3
                and int(line[star + 1 :], 16) == checksum(line[:star])
            )
            text = line[:star].decode("ascii") if ok else ""
        except (ValueError, UnicodeDecodeError):
            ok = False
        if not ok or not text:
            self.stats.bad_checksums += 1
            return None
        self.stats.sentences += 1
        type_, *fields = text.split(",")
        return Sentence(type_, tuple(fields))


_KEY_VALUE = re.compile(rb"([A-Za-z][A-Za-z0-9_]*)=\s*([+-]?[0-9]*\.?[0-9]+)")


class KeyValueFramer:
    """Incremental framer of ``KEY=value`` lines; each becomes ``Sentence(KEY, (value,))``."""

    def __init__(self, *, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        self.max_length = max_length
        self.stats = FramerStats()
        self._line = bytearray()
        self._skipping = False  # after an over-long line, until its end

    def feed(self, data: bytes) -> list[Sentence]:
        sentences: list[Sentence] = []
        for byte in data:
            if byte == 0x0A:
                line, self._line = bytes(self._line).strip(b"\r "), bytearray()
                if self._skipping:
                    self._skipping = False
                    continue
                match = _KEY_VALUE.fullmatch(line)
                if match:
                    self.stats.sentences += 1
                    key, value = match.group(1).decode(), match.group(2).decode()
                    sentences.append(Sentence(key, (value,)))
                else:
                    self.stats.noise_bytes += len(line)
            elif not self._skipping:
                self._line.append(byte)
                if len(self._line) > self.max_length:
                    self.stats.overlong += 1
                    self._line = bytearray()
                    self._skipping = True
        return sentences


Framer = SentenceFramer | KeyValueFramer

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "Framer",
    "FramerStats",
    "KeyValueFramer",
    "Sentence",
    "SentenceFramer",
    "checksum",
    "frame_sentence",
]
