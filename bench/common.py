"""What every benchmark prints: the machine it ran on, and medians of repeated runs."""

from __future__ import annotations

import os
import platform
import statistics
from datetime import UTC, datetime
from typing import Any


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0
