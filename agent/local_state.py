"""What the agent keeps in ``data_dir`` beside its buffer, as small JSON files written
atomically (temporary file, fsync, rename): a power cut leaves the old file or the new one.

- ``config-last-good.json``: the config the agent last applied and saw work (the document,
  its hash, the pushed version if any, and the hash of the agent.toml it started from);
- ``overrides.json``: local overrides, set by a ``set-interval`` command or by a technician
  editing the file: ``{"devices": {"gauge-1": {"interval_s": 2.5}}}``. They win over any
  config, pushed or local, and every heartbeat shows them (``local_overrides``);
- ``maintenance.json``: the devices in maintenance: ``{"devices": ["gauge-1"]}``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wire.validation import problems

log = logging.getLogger(__name__)

LAST_GOOD_FILE = "config-last-good.json"
OVERRIDES_FILE = "overrides.json"
MAINTENANCE_FILE = "maintenance.json"

IntervalS = Annotated[float, Field(ge=0.1, le=86400)]


def write_json_atomically(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON: written beside it, fsynced, renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as file:
        json.dump(data, file, indent=2, sort_keys=True)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LastGood(_File):
    hash: str
    version: int | None = None  # the controller's config version, when it was pushed
    base_hash: str  # the hash of the agent.toml the agent started from when it was applied
    applied_ms: int
    config: dict[str, Any]


def load_last_good(data_dir: Path) -> LastGood | None:
    path = data_dir / LAST_GOOD_FILE
    try:
        return LastGood.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        log.warning("%s: unreadable, ignored: %s", path, exc)
        return None


def save_last_good(data_dir: Path, last_good: LastGood) -> None:
    write_json_atomically(data_dir / LAST_GOOD_FILE, last_good.model_dump(mode="json"))


class DeviceOverride(_File):
    interval_s: IntervalS | None = None


class OverridesDoc(_File):
    devices: dict[str, DeviceOverride] = Field(default_factory=dict)


class Overrides:
    """``overrides.json``: read at start and again whenever its mtime changes (``refresh``)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / OVERRIDES_FILE
        self._lock = threading.Lock()
        self._doc = OverridesDoc()
        self._mtime_ns: int | None = None
        self.error: str | None = None  # why the file was ignored, for the heartbeat
        self.refresh()

    def refresh(self) -> bool:
        """Re-read the file if it changed since last read; True when its content changed."""
        try:
            mtime_ns: int | None = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime_ns = None
        with self._lock:
            if mtime_ns == self._mtime_ns:
                return False
            self._mtime_ns = mtime_ns
            before = self._doc
            if mtime_ns is None:
                self._doc, self.error = OverridesDoc(), None
            else:
                try:
                    self._doc = OverridesDoc.model_validate_json(self.path.read_bytes())
                    self.error = None
                except (OSError, ValidationError) as exc:
                    self._doc = OverridesDoc()
                    self.error = f"{self.path}: ignored: {_explain(exc)}"[:512]
                    log.error("%s", self.error)
            if self._doc != before:
                log.info("local overrides: %s", self.as_dict_locked() or "none")
            return self._doc != before

    def interval_s(self, device: str) -> float | None:
        with self._lock:
            found = self._doc.devices.get(device)
            return found.interval_s if found else None

    def set_interval(self, device: str, interval_s: float | None) -> None:
        """Keep ``interval_s`` for ``device`` (None: remove its override); saved at once."""
        with self._lock:
            devices = dict(self._doc.devices)
            if interval_s is None:
                devices.pop(device, None)
            else:
                devices[device] = DeviceOverride(interval_s=interval_s)
            self._doc = OverridesDoc(devices=devices)
            write_json_atomically(self.path, self._doc.model_dump(mode="json", exclude_none=True))
            self._mtime_ns = self.path.stat().st_mtime_ns

    def as_dict(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return self.as_dict_locked()

    def as_dict_locked(self) -> dict[str, dict[str, float]]:
        return {
            name: override.model_dump(exclude_none=True)
            for name, override in sorted(self._doc.devices.items())
            if override.interval_s is not None
        }


class Maintenance:
    """The devices in maintenance, kept in ``maintenance.json`` across restarts."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / MAINTENANCE_FILE
        self._lock = threading.Lock()
        self._devices: frozenset[str] = frozenset()
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            self._devices = frozenset(str(d) for d in raw.get("devices", []))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            log.error("%s: unreadable, no device in maintenance: %s", self.path, exc)

    @property
    def devices(self) -> frozenset[str]:
        return self._devices

    def set(self, device: str, *, on: bool) -> bool:
        """Mark or clear ``device``; returns whether that changed anything."""
        with self._lock:
            devices = self._devices | {device} if on else self._devices - {device}
            if devices == self._devices:
                return False
            write_json_atomically(self.path, {"devices": sorted(devices)})
            self._devices = devices
            return True


def _explain(exc: OSError | ValidationError) -> str:
    if isinstance(exc, OSError):
        return str(exc)
    return "; ".join(problems(exc, OverridesDoc))
