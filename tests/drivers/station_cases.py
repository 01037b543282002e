"""Station drivers for the contract suite: a config, and what the station sends, built by
firmware-sim's own encoders (an independent implementation: the two sides share no code)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from firmware_sim.stations.hj212 import Hj212Encoder
from firmware_sim.stations.sl651 import Sl651Encoder

MN = "5001000000000000000000C3"
STATION = "0012345670"
WHEN = datetime(2025, 6, 18, 8, 0, 5)


@dataclass(frozen=True)
class StationCase:
    id: str
    config: dict[str, Any]  # the [[devices]] table, without name and port
    metrics: list[str]
    # (password, station key) -> one report the station sends, as bytes on the wire
    report: Callable[[str, str], bytes]
    corrupt: Callable[[bytes], bytes]  # the same with a wrong CRC
    answers: bool  # the standard has the centre answer this report


def sl651_report(password: str, station: str) -> bytes:
    encoder = Sl651Encoder(station=station, password=password, centre=1)
    return encoder.report(
        0x32, serial=7, sent=WHEN, observed=WHEN.replace(second=0),
        elements=[("Z", 12.345), ("PJ", 0.5), ("VT", 12.5)],
    )  # fmt: skip


def sl651_ascii_report(password: str, station: str) -> bytes:
    encoder = Sl651Encoder(station=station, password=password, centre=1, ascii_frames=True)
    return encoder.report(
        0x32, serial=7, sent=WHEN, observed=WHEN.replace(second=0),
        elements=[("Z", 12.345), ("PJ", 0.5), ("VT", 12.5)],
    )  # fmt: skip


def hj212_report(password: str, mn: str) -> bytes:
    encoder = Hj212Encoder(mn=mn, password=password, st="22")
    return encoder.data("2011", WHEN, {"a34004": (35.2, "N"), "a21026": (8.1, "N")}, flag=5)


def flip_last_crc_byte(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0x01])


def flip_hj212_crc(packet: bytes) -> bytes:
    digit = packet[-3:-2]
    return packet[:-3] + (b"0" if digit != b"0" else b"1") + packet[-2:]


SL651_CONFIG: dict[str, Any] = {
    "driver": "sl651",
    "station": STATION,
    "password": "1234",
    "elements": [
        {"element": "Z", "metric": "level_m", "unit": "m"},
        {"element": "PJ", "metric": "rain_mm", "unit": "mm"},
        {"element": "VT", "metric": "supply_v", "unit": "V"},
    ],
}
STATION_CASES = [
    StationCase(
        "sl651-hex",
        SL651_CONFIG,
        ["level_m", "rain_mm", "supply_v"],
        sl651_report,
        flip_last_crc_byte,
        answers=True,
    ),
    StationCase(
        "sl651-ascii",
        SL651_CONFIG,
        ["level_m", "rain_mm", "supply_v"],
        sl651_ascii_report,
        flip_last_crc_byte,
        answers=True,
    ),
    StationCase(
        "hj212-air",
        {
            "driver": "hj212",
            "mn": MN,
            "password": "123456",
            "factors": [
                {"factor": "a34004", "metric": "pm25_ug_m3", "unit": "ug/m3"},
                {"factor": "a21026", "metric": "so2_mg_m3", "unit": "mg/m3"},
            ],
        },
        ["pm25_ug_m3", "so2_mg_m3"],
        hj212_report,
        flip_hj212_crc,
        answers=True,
    ),
]


def key_of(case: StationCase) -> tuple[str, str]:
    """(password, station key) of the case's configured station."""
    config = case.config
    return str(config["password"]), str(config.get("station") or config["mn"])
