"""The offline install checks every wheel's SHA-256 (issue 16, supply chain): build-wheelhouse.sh
writes the wheelhouse's requirements.txt (the platform's hash lock plus the gatekey wheel it
built, with its hash), and the Linux installer installs with `pip --require-hashes --no-index -r
requirements.txt`. End to end in a temporary prefix: a wheel whose bytes differ from the list is
refused by the installer (a dependency's on a first install: no venv is left; gatekey's own on an
upgrade: the installed helper is kept and still runs), and a wheelhouse without its list is
refused before anything is created.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from blackbox_env import REPO

pytestmark = [pytest.mark.slow, pytest.mark.blackbox]

INSTALL = REPO / "install"
REFUSED = "THESE PACKAGES DO NOT MATCH THE HASHES"


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """install/build-wheelhouse.sh for this machine (gatekey from the checkout)."""
    out = tmp_path_factory.mktemp("hashed") / "wh"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    argv = ["sh", str(INSTALL / "build-wheelhouse.sh"), "--platform", "manylinux2014_x86_64"]
    argv += ["--python-version", version, "--out", str(out), "--pip-python", sys.executable]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> dict[str, str]:
    return {normalise(m[1]): m[2] for m in re.finditer(r"(?m)^([A-Za-z0-9_.-]+)==(\S+)", text)}


def install(wheelhouse: Path, root: Path) -> subprocess.CompletedProcess[str]:
    argv = ["sh", str(INSTALL / "linux" / "install.sh"), "--wheelhouse", str(wheelhouse)]
    argv += ["--prefix", str(root / "opt" / "gate key"), "--bin-dir", str(root / "bin")]
    argv += ["--config-dir", str(root / "etc")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEY_")}
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300
    )


def tampered_copy(wheelhouse: Path, dest: Path, wheel_glob: str) -> Path:
    """A copy of the wheelhouse whose one wheel (``wheel_glob``) is rewritten with a line added
    to its package's ``__init__.py``: a well-formed wheel that installs and runs, as an
    attacker's would (pip does not check a wheel's RECORD), only not the bytes listed."""
    shutil.copytree(wheelhouse, dest)
    [wheel] = dest.glob(wheel_glob)
    original = wheel.with_suffix(".orig")
    wheel.rename(original)
    with zipfile.ZipFile(original) as src, zipfile.ZipFile(wheel, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.count("/") == 1 and info.filename.endswith("/__init__.py"):
                data += b"\nTAMPERED = True\n"
            out.writestr(info, data)
    original.unlink()
    return wheel


def test_requirements_pin_the_lock_and_the_gatekey_wheel_by_hash(wheelhouse: Path):
    text = (wheelhouse / "requirements.txt").read_text()
    lock = pins((INSTALL / "locks" / "wheelhouse-linux.txt").read_text())
    listed = pins(text)
    [wheel] = wheelhouse.glob("gatekey-*.whl")
    assert listed == {**lock, "gatekey": wheel.name.split("-")[1]}
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert re.search(rf"(?m)^gatekey==\S+ --hash=sha256:{digest}$", text), text[-300:]
    # Every requirement carries hashes (pip's hash mode refuses a file where one has none).
    for block in re.split(r"\n(?=[A-Za-z0-9])", re.sub(r"(?m)^\s*#.*\n", "", text).strip()):
        assert "--hash=sha256:" in block, block.splitlines()[0]
    names = {normalise(w.name.split("-")[0]) for w in wheelhouse.glob("*.whl")}
    assert set(listed) <= names, set(listed) - names


def test_a_tampered_wheel_is_refused_by_the_installer(wheelhouse: Path, tmp_path: Path):
    # A dependency's wheel changed, on a first install: refused, and nothing is left.
    root = tmp_path / "root"
    root.mkdir()
    bad = tmp_path / "bad-dep"
    tampered = tampered_copy(wheelhouse, bad, "idna-*.whl")
    proc = install(bad, root)
    assert proc.returncode == 1, proc.stderr
    assert REFUSED in proc.stderr, proc.stderr
    assert f"file://{tampered}" in proc.stderr  # pip names the wheel
    assert f"pip refused the wheelhouse {bad}" in proc.stderr
    assert sorted(p.name for p in root.iterdir()) == [], "a refused install left files"

    # The genuine wheelhouse installs (the same path the tampered one took, so the refusal above
    # was the hash, not the path) and the helper runs.
    good = install(wheelhouse, root)
    assert good.returncode == 0, good.stderr
    helper = root / "bin" / "gatekey"
    ran = subprocess.run([str(helper), "version"], capture_output=True, text=True, timeout=60)
    assert (ran.returncode, ran.stdout.split()[0]) == (0, "gatekey"), ran.stderr
    installed = (root / "opt" / "gate key" / "lib").glob("python3*/site-packages/gatekey")
    [package] = list(installed)
    before = {p: p.read_bytes() for p in package.rglob("*.py")}

    # gatekey's own wheel changed, as an upgrade: refused, and the installed helper is kept.
    bad_gk = tmp_path / "bad-gatekey"
    tampered = tampered_copy(wheelhouse, bad_gk, "gatekey-*.whl")
    proc = install(bad_gk, root)
    assert proc.returncode == 1, proc.stderr
    assert REFUSED in proc.stderr, proc.stderr
    assert f"file://{tampered}" in proc.stderr
    assert {p: p.read_bytes() for p in package.rglob("*.py")} == before
    ran = subprocess.run([str(helper), "version"], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr


def test_a_wheelhouse_without_its_hash_list_is_refused(wheelhouse: Path, tmp_path: Path):
    unlisted = tmp_path / "wh"
    shutil.copytree(wheelhouse, unlisted)
    (unlisted / "requirements.txt").unlink()
    root = tmp_path / "root"
    root.mkdir()
    proc = install(unlisted, root)
    assert proc.returncode == 1
    assert f"{unlisted} has no requirements.txt" in proc.stderr, proc.stderr
    assert list(root.iterdir()) == []
