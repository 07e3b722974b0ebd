"""What the fleet packaging in install/ builds (issue 14, items 1 and 15), run on Linux as far as
Linux can run it.

`install/build-wheelhouse.sh` with no --from packages the checkout it sits in (never an index's
"gatekey": the project is not on PyPI), from a clean copy. The wheelhouse it builds here feeds the
macOS pieces. `install/macos/jamf-gatekey.sh` is the installer in one file (for Jamf, whose
scripts are single files); `build-pkg.sh --stage` writes the scripts folder of the `.pkg`, whose
postinstall runs that file and leaves it in the installation as the uninstaller. Here the
postinstall runs as Installer runs it (as root, `$3` the target volume: a temporary folder),
installs gatekey offline under it, and the uninstaller it left removes the installation and
forgets the package's receipt (a stand-in `pkgutil` on PATH records the call). Not run: pkgbuild
and productsign, Installer and Jamf themselves, the real pkgutil, and a macOS Python.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from blackbox_env import REPO
from checkout import copy_checkout

MACOS = REPO / "install" / "macos"
JAMF = MACOS / "jamf-gatekey.sh"
MAC_PREFIX = Path("Library/Application Support/gatekey")
MARKER = "GATEKEY_INSTALL_UNIX_SH"
PKG_ID = "com.example.gatekey-test"
CONFIG = 'default_profile = "corp"\n\n[profiles.corp]\nsource = "keychain"\n'
EXES = ("gatekey", "gatekey-keychain", "gatekey-idp", "gatekey-vault")


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
    )


class Volume:
    """A temporary target volume: like a Mac's, it has /Library/Application Support already."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "Library" / "Application Support").mkdir(parents=True)
        self.prefix = root / MAC_PREFIX
        self.bin_dir = root / "usr" / "local" / "bin"

    def left_behind(self) -> list[str]:
        keep = {self.root / "Library", self.root / "Library" / "Application Support"}
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p not in keep)


@pytest.fixture
def fake_pkgutil(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """PATH with a `pkgutil` that records its arguments (macOS has the real one)."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    log = tmp_path / "pkgutil.log"
    tool = bin_dir / "pkgutil"
    tool.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >>"{log}"\n')
    tool.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEY_")}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return env, log


def test_jamf_script_carries_the_current_installer() -> None:
    """The copy inside the one-file script is install-unix.sh byte for byte (sync-jamf-script.sh
    --check says the same), so a Jamf install is the tested installer."""
    text = JAMF.read_text()
    start = text.index(f"<<'{MARKER}'\n") + len(f"<<'{MARKER}'\n")
    end = text.index(f"\n{MARKER}\n", start) + 1
    assert text[start:end] == (REPO / "install" / "common" / "install-unix.sh").read_text()
    proc = run(["sh", str(MACOS / "sync-jamf-script.sh"), "--check"])
    assert proc.returncode == 0, proc.stderr


def test_jamf_parameters_reach_the_installer(tmp_path: Path) -> None:
    """Called as Jamf calls scripts ($1 the volume, $2 the computer, $3 the user, then ours):
    a wheelhouse that is not there, a missing source, an unknown action each fail with one clear
    line, before anything is created on the volume."""
    volume = Volume(tmp_path / "vol")
    jamf = ["sh", str(JAMF), str(volume.root), "mac-42", "alice"]
    proc = run([*jamf, "install", str(tmp_path / "nowhere")])
    assert proc.returncode == 1
    assert f"no such wheelhouse directory: {tmp_path / 'nowhere'}" in proc.stderr, proc.stderr
    proc = run([*jamf, "Install"])  # Jamf admins type parameters by hand: case does not matter
    assert proc.returncode == 1
    assert "say where gatekey comes from" in proc.stderr, proc.stderr
    proc = run([*jamf, "frobnicate"])
    assert proc.returncode == 1
    assert "unknown action: frobnicate" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert volume.left_behind() == []
    helped = run(["sh", str(JAMF), "--help"])
    assert helped.returncode == 0
    assert "Jamf parameters" in helped.stdout
    assert "--wheelhouse DIR" in helped.stdout


def test_build_pkg_needs_macos_to_build_but_stages_anywhere(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wh"
    wheelhouse.mkdir()
    (wheelhouse / "gatekey-0.0.0-py3-none-any.whl").write_bytes(b"")
    (wheelhouse / "requirements.txt").write_text("gatekey==0.0.0 --hash=sha256:00\n")
    argv = ["sh", str(MACOS / "build-pkg.sh"), "--wheelhouse", str(wheelhouse), "--version", "1"]
    proc = run([*argv, "--out", str(tmp_path / "g.pkg")])
    if proc.returncode == 0:
        pytest.fail("built a .pkg without pkgbuild?")
    assert "pkgbuild not found: build the package on macOS" in proc.stderr
    proc = run([*argv, "--stage", str(tmp_path / "scripts"), "--identifier", PKG_ID])
    assert proc.returncode == 0, proc.stderr
    staged = sorted(p.name for p in (tmp_path / "scripts").iterdir())
    assert staged == ["identifier.txt", "jamf-gatekey.sh", "postinstall", "wheelhouse"]
    assert (tmp_path / "scripts" / "identifier.txt").read_text() == PKG_ID + "\n"
    assert (tmp_path / "scripts" / "jamf-gatekey.sh").read_bytes() == JAMF.read_bytes()
    for name in ("postinstall", "jamf-gatekey.sh"):
        assert os.access(tmp_path / "scripts" / name, os.X_OK), name


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout whose build/ holds a module an earlier build left behind."""
    src = copy_checkout(tmp_path_factory.mktemp("packaging") / "gatekey")
    stale = src / "build" / "lib" / "gatekey" / "stale_module.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("raise SystemExit('a module deleted since the last build')\n")
    return src


@pytest.fixture(scope="module")
def wheelhouse_build(checkout: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The copy's build-wheelhouse.sh with no --from, for this machine's platform and Python."""
    out = checkout.parent / "wh"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    argv = ["sh", str(checkout / "install" / "build-wheelhouse.sh"), "--platform"]
    argv += ["manylinux2014_x86_64", "--python-version", version, "--out", str(out)]
    proc = run([*argv, "--pip-python", sys.executable])
    assert proc.returncode == 0, proc.stderr
    return out, proc


@pytest.fixture(scope="module")
def wheelhouse(wheelhouse_build: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    return wheelhouse_build[0]


@pytest.mark.slow
def test_wheelhouse_builder_packages_its_checkout_by_default(
    checkout: Path, wheelhouse_build: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    """No --from: gatekey is built from the checkout the script sits in, from a clean copy (the
    stale module in that checkout's build/ does not ship), and only its dependencies are fetched.
    (Before: it asked the index for "gatekey" and failed.)"""
    out, proc = wheelhouse_build
    assert f"gatekey from the checkout {checkout}" in proc.stderr
    [wheel] = out.glob("gatekey-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        ours = (checkout / "helpers" / "gatekey" / "__init__.py").read_bytes()
        assert zf.read("gatekey/__init__.py") == ours
    assert "gatekey/stale_module.py" not in names
    helpers = checkout / "helpers"
    assert {p.relative_to(helpers).as_posix() for p in helpers.rglob("*.py")} <= names
    assert any(w.name.startswith("keyring-") for w in out.glob("*.whl")), "no dependencies"
    assert not (checkout / "dist").exists(), "the checkout was built in place"


@pytest.mark.slow
def test_pkg_postinstall_installs_and_leaves_an_uninstaller(
    wheelhouse: Path, tmp_path: Path, fake_pkgutil: tuple[dict[str, str], Path]
) -> None:
    env, pkgutil_log = fake_pkgutil
    config = tmp_path / "corp.toml"
    config.write_text(CONFIG)
    scripts = tmp_path / "scripts"
    argv = ["sh", str(MACOS / "build-pkg.sh"), "--wheelhouse", str(wheelhouse), "--version"]
    argv += ["0.1.0", "--config", str(config), "--identifier", PKG_ID, "--stage", str(scripts)]
    proc = run(argv)
    assert proc.returncode == 0, proc.stderr

    # Installer runs the postinstall with: the package, the install location, the target volume.
    volume = Volume(tmp_path / "vol")
    proc = run(
        ["sh", str(scripts / "postinstall"), str(tmp_path / "g.pkg"), "/", str(volume.root), "/"],
        env,
    )
    assert proc.returncode == 0, proc.stderr
    helper = volume.prefix / "bin" / "gatekey"
    got = run([str(helper), "version"], env)
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith("gatekey ")
    for name in EXES:
        assert os.readlink(volume.bin_dir / name) == str(volume.prefix / "bin" / name)
    assert (volume.prefix / "config.toml").read_text() == CONFIG
    uninstaller = volume.prefix / "uninstall-gatekey.sh"
    assert uninstaller.read_bytes() == JAMF.read_bytes()
    mode = uninstaller.stat().st_mode
    assert mode & stat.S_IXUSR
    assert not mode & (stat.S_IWGRP | stat.S_IWOTH)
    if os.geteuid() == 0:
        assert uninstaller.stat().st_uid == 0
    assert f'sudo sh "{uninstaller}"' in proc.stderr  # the install says how to uninstall
    assert not pkgutil_log.exists()

    # The uninstaller left on disk: run with no action, it uninstalls the installation it is in,
    # keeps the config, and forgets the receipt on that volume.
    proc = run(["sh", str(uninstaller)], env)
    assert proc.returncode == 0, proc.stderr
    assert volume.left_behind() == [str(MAC_PREFIX), str(MAC_PREFIX / "config.toml")]
    assert pkgutil_log.read_text() == f"--volume {volume.root} --forget {PKG_ID}\n"
    assert "--purge removes it" in proc.stderr

    # Then Jamf's purge (parameter 4) removes the kept config and its folder.
    proc = run(["sh", str(JAMF), str(volume.root), "mac-42", "alice", "purge"], env)
    assert proc.returncode == 0, proc.stderr
    assert volume.left_behind() == []
