"""Vendor Leaflet from the npm registry into the console's static files (no CDN, no build).

    python -m tools.vendor_leaflet [--version 1.9.4]

Runs ``npm pack leaflet@VERSION`` (the registry's own tarball, checked by npm against its
published integrity), and copies the files the console loads, unchanged, into
``controller/console/vendor/leaflet/`` with ``MANIFEST.json``: the package, its version, the
registry's sha512 integrity of the tarball, and the sha256 of every copied file
(``tests/console/test_map_api.py`` checks the files against it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "controller" / "console" / "vendor" / "leaflet"
FILES = (
    "LICENSE",
    "dist/leaflet.js",
    "dist/leaflet.css",
    "dist/images/layers.png",
    "dist/images/layers-2x.png",
    "dist/images/marker-icon.png",
    "dist/images/marker-icon-2x.png",
    "dist/images/marker-shadow.png",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="1.9.4")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        packed = subprocess.run(
            ["npm", "pack", f"leaflet@{args.version}", "--json"],
            cwd=tmp, check=True, capture_output=True, text=True,
        )  # fmt: skip
        info = json.loads(packed.stdout)[0]
        with tarfile.open(Path(tmp) / info["filename"]) as tar:
            tar.extractall(tmp, filter="data")
        if TARGET.exists():
            shutil.rmtree(TARGET)
        hashes = {}
        for name in FILES:
            source = Path(tmp) / "package" / name
            target = TARGET / name.removeprefix("dist/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            hashes[target.relative_to(TARGET).as_posix()] = hashlib.sha256(
                target.read_bytes()
            ).hexdigest()
    manifest = {
        "package": "leaflet",
        "version": info["version"],
        "registry_integrity": info["integrity"],
        "files_sha256": hashes,
    }
    (TARGET / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"leaflet {info['version']} -> {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
