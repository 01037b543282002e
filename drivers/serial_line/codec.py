"""Pure framing of ASCII sentences from a byte stream, apart from any I/O.

Three formats devices use:

- NMEA-style ``$TYPE,field,...*CS\\r\\n``: CS is the XOR of the bytes between ``$`` and
  ``*``, as two hex digits (``SentenceFramer``);
- bare ``KEY=value\\r\\n`` lines, as free-running inclinometers send
  ``X=+00.430\\r\\nY=-00.084\\r\\n`` (``KeyValueFramer``);
- framed inclinometer angles ``STX X SP Y ETB CS $`` (``FramedFramer``): CS is one binary
  byte, the XOR of every byte after STX and before ETB.

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


STX = 0x02  # starts a framed inclinometer frame
ETB = 0x17  # ends its text; the checksum byte and "$" follow
FRAME_END = 0x24  # "$", the frame's last byte
ENQ = 0x05  # after the address byte: "the device with this id, answer"
ENQ_ADDRESS_BASE = 0xB0  # the address byte is 0xB0 + id
MAX_ENQ_ID = 0xFF - ENQ_ADDRESS_BASE  # 79: the address must stay one byte


def frame_checksum(text: bytes) -> int:
    """The framed form's checksum: XOR of ``text``, every byte after STX and before ETB.

    STX, ETB, the checksum byte itself and the final ``$`` are not included.
    ``frame_checksum(b"+00.430 -00.084") == 0x2D``.
    """
    return checksum(text)


def frame_angles(x: str, y: str) -> bytes:
    """A framed frame on the wire: ``STX x SP y ETB CS $``."""
    text = f"{x} {y}".encode("ascii")
    return bytes([STX]) + text + bytes([ETB, frame_checksum(text), FRAME_END])


def enq_request(device_id: int) -> bytes:
    """What a master sends on a shared line so that device ``device_id`` answers one frame."""
    if not 0 <= device_id <= MAX_ENQ_ID:
        raise ValueError(f"ENQ id {device_id} is not 0-{MAX_ENQ_ID} (0xB0 + id is one byte)")
    return bytes([ENQ_ADDRESS_BASE + device_id, ENQ])


class FramedFramer:
    """Incremental framer of ``STX text ETB CS $`` frames; see ``frame_checksum``.

    Each good frame becomes ``Sentence("", fields)``, its text split at spaces: the X
    angle is ``fields[0]``, the Y angle ``fields[1]``. The checksum byte is binary and may
    be any value, STX, ETB and ``$`` included: the byte after ETB is always the checksum
    and the next must be ``$``. When it is not, the frame was cut short, and framing
    resumes at the byte after ETB (it may be the STX of the next frame), so a frame cut
    anywhere never costs the next one. The text must be printable ASCII (0x20-0x7E) and
    at most ``max_length`` bytes; a non-text byte ends a broken frame where it stands.
    """

    def __init__(self, *, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        self.max_length = max_length
        self.stats = FramerStats()
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Sentence]:
        self._buffer += data
        frames: list[Sentence] = []
        while self._buffer:
            used, frame = self._next()
            if used == 0:
                break  # a frame begun: wait for the rest
            del self._buffer[:used]
            if frame is not None:
                frames.append(frame)
        return frames

    def _next(self) -> tuple[int, Sentence | None]:
        """(bytes used from the buffer's start, the frame they made or None); 0: need more."""
        buffer = self._buffer
        start = buffer.find(STX)
        if start != 0:  # bytes before any frame (CR and LF between frames are not noise)
            junk = buffer if start < 0 else buffer[:start]
            self.stats.noise_bytes += sum(1 for byte in junk if byte not in (0x0D, 0x0A))
            return len(junk), None
        end = 1
        while end < len(buffer) and buffer[end] != ETB:
            if not 0x20 <= buffer[end] <= 0x7E:  # a new STX or noise: this frame is broken
                self.stats.cut_short += 1
                return end, None
            if end > self.max_length:
                self.stats.overlong += 1
                return end, None  # the rest of the long text is noise up to the next STX
            end += 1
        if end + 2 >= len(buffer):
            return 0, None  # no ETB yet, or no checksum and "$" after it yet
        if buffer[end + 2] != FRAME_END:
            self.stats.cut_short += 1
            return end + 1, None  # resume at the would-be checksum byte
        text = bytes(buffer[1:end])
        if buffer[end + 1] != frame_checksum(text):
            self.stats.bad_checksums += 1
            return end + 3, None
        self.stats.sentences += 1
        return end + 3, Sentence("", tuple(text.decode("ascii").split()))


Framer = SentenceFramer | KeyValueFramer | FramedFramer

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "ENQ",
    "ETB",
    "FRAME_END",
    "STX",
    "FramedFramer",
    "Framer",
    "FramerStats",
    "KeyValueFramer",
    "Sentence",
    "SentenceFramer",
    "checksum",
    "enq_request",
    "frame_angles",
    "frame_checksum",
    "frame_sentence",
]
