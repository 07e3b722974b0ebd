"""The self-contained bundle (install/build-bundle.sh) the install tests run: the one
scripts/test.sh built for this checkout (dist/test-bundle, cached by its inputs), else one built
here into a temporary folder (about 30 s, its build venv cached). The ``bundle`` fixture
(tests/blackbox/fleet/conftest.py) is this, once per module."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from blackbox_env import REPO

BUILD_S = 900  # a first build creates the hash-locked build venv: downloads, then PyInstaller


def built_bundle(tmp_path_factory: pytest.TempPathFactory, *, unpacked: bool = False) -> Path:
    """The bundle's .tar.gz (its .sha256 and .cdx.json beside it); ``unpacked``: its folder
    (the executables), which the build leaves beside the archive."""
    dist = REPO / "dist" / "test-bundle"
    if unpacked:
        built = sorted(p for p in dist.glob("gatekey-*") if p.is_dir())
    else:
        built = sorted(dist.glob("gatekey-*.tar.gz"))
    if built:
        return built[-1]
    out = tmp_path_factory.mktemp("bundle")
    proc = subprocess.run(
        ["bash", str(REPO / "install" / "build-bundle.sh"), "--out", str(out)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=BUILD_S,
    )
    assert proc.returncode == 0, proc.stderr
    archive = proc.stdout.strip().splitlines()[-1]
    return Path(archive.removesuffix(".tar.gz") if unpacked else archive)
