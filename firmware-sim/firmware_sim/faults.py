"""Misbehaviour a simulated device can be told to show, switched at run time.

A ``Faults`` value is swapped whole (``device.faults = Faults(silent=True)``), from a test
in the same process or through the control socket (``firmware_sim.control``) from outside.
Reboot is an action, not a state: ``device.reboot()``.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Faults:
    silent: bool = False  # never answer, as a dead device or a cut cable
    late_s: float = 0.0  # answer this much later than usual (past the master's timeout)
    corrupt_crc: bool = False  # a wrong checksum (CRC, LRC or sentence checksum)
    reply_as_slave: int | None = None  # answer as another slave id / address
    truncate: bool = False  # send only the first half of the answer
    garbage: bool = False  # send noise bytes instead of the answer
    stuck: bool = False  # values freeze where they were when this was switched on
    out_of_range: bool = False  # measurements read an impossible value

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Faults:
        """Faults from JSON (the control socket); unknown names and wrong types are refused."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ValueError(f"unknown faults {unknown} (known: {sorted(known)})")
        for name, value in raw.items():
            if name == "late_s":
                ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
            elif name == "reply_as_slave":
                ok = value is None or (isinstance(value, int) and 0 <= value <= 255)
            else:
                ok = isinstance(value, bool)
            if not ok:
                raise ValueError(f"fault {name!r}: bad value {value!r}")
        return cls(**raw)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def mangle(frame: bytes, faults: Faults, rng: random.Random) -> bytes:
    """Apply the byte-level faults (truncate, garbage) to a frame ready for the wire."""
    if faults.garbage:
        # Noise never starts like a frame (no ':' or '$', no slave id 1-247); a line's CRLF
        # survives, so a line-based reader sees a line of noise rather than one endless line.
        end = b"\r\n" if frame.endswith(b"\r\n") else b""
        body = frame[: len(frame) - len(end)]
        noise = bytes(rng.choice(b"\x00\xf8\xfa\xfe\xa5\x5a") for _ in body[1:])
        return bytes([0xFF]) + noise + end
    if faults.truncate:
        return frame[: max(1, len(frame) // 2)]
    return frame
