"""Wire timing: how long bytes take on a serial line, and waiting precisely for a moment.

A pty carries bytes at once, whatever the baud rate; the simulator paces its answers so
that a master sees the rate a real line gives: request on the wire, the silence that ends
it, the device's response time, then the response on the wire. The answer is written in
one piece when its last byte would have arrived (one write, no per-byte sleeps that
overshoot), so a driver is held to the real bus rate and no faster.
"""

from __future__ import annotations

import select
import time

MODBUS_BITS_PER_CHAR = 11  # start, 8 data, parity or a second stop bit, stop
FRAME_GAP_CHARS = 3.5  # RTU: the silence that ends a frame


def bits_per_char(parity: str, stopbits: float = 1, databits: int = 8) -> float:
    return 1 + databits + (0 if parity == "N" else 1) + stopbits


def transmit_s(n_chars: float, baud: int, bits: float = MODBUS_BITS_PER_CHAR) -> float:
    """Seconds ``n_chars`` characters take on the wire at ``baud``."""
    return n_chars * bits / baud


def wait_until_time(deadline: float, wake_fd: int) -> bool:
    """Block until ``time.monotonic()`` reaches ``deadline``; False if ``wake_fd`` woke us.

    select() on the wake pipe with a timeout: precise to a fraction of a millisecond and
    interruptible by a stop.
    """
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        readable, _, _ = select.select([wake_fd], [], [], remaining)
        if readable:
            return False
