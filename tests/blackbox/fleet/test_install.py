"""The fleet installers (install/): the Linux installer end to end, and shellcheck on every script.

The installer runs for real, into temporary locations (--prefix with a space in it, as macOS's
"/Library/Application Support/gatekey" has, --bin-dir, --config-dir), from a wheelhouse built from
this checkout, offline. The installed helper then runs by absolute path with an empty environment
and stdin closed, as the app runs it, and reads a secret from the real Secret Service.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from blackbox_env import REPO, Env

pytestmark = pytest.mark.slow

INSTALL = REPO / "install"
LINUX_INSTALLER = INSTALL / "linux" / "install.sh"
EXES = ("gatekey", "gatekey-keychain", "gatekey-idp", "gatekey-vault")
SECRET = "sk-gk-inst4LLr9Wq2mZx7Tp3Kd8Vb"
CONFIG = 'default_profile = "corp"\n\n[profiles.corp]\nsource = "keychain"\naccount = "corp"\n'
BAD_CONFIG = '[profiles.corp]\nsource = "keychain"\nacount = "corp"\n'  # misspelt key


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What an admin ships: install/build-wheelhouse.sh run on gatekey's wheel from this checkout
    for this machine's platform and Python (wheels only, from the package index / pip's cache)."""
    work = tmp_path_factory.mktemp("wheelhouse")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--quiet", "--no-deps", "-w", str(work / "dist"), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = (work / "dist").glob("gatekey-*.whl")
    out = work / "wh"
    build_wheelhouse(out, wheel, "manylinux2014_x86_64")
    assert list(out.glob("gatekey-*.whl")), "the wheelhouse has no gatekey wheel"
    return out


def build_wheelhouse(out: Path, wheel: Path, platform: str) -> subprocess.CompletedProcess[str]:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    argv = ["sh", str(INSTALL / "build-wheelhouse.sh"), "--platform", platform]
    argv += ["--python-version", version, "--from", str(wheel), "--out", str(out)]
    argv += ["--pip-python", sys.executable]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_a_windows_wheelhouse_holds_windows_wheels_only(wheelhouse: Path, tmp_path: Path) -> None:
    """Built on Linux for win_amd64: Windows' own dependencies are added (pip judges markers by
    the machine it runs on), and every wheel installs on Windows. (Linux-only pure-Python wheels
    such as secretstorage may come along; pip on Windows skips them by their marker.)"""
    [wheel] = wheelhouse.glob("gatekey-*.whl")
    out = tmp_path / "wh-win"
    build_wheelhouse(out, wheel, "win_amd64")
    names = sorted(w.name.lower() for w in out.glob("*.whl"))
    assert any(n.startswith("pywin32_ctypes-") for n in names), names
    for name in names:
        platform_tag = name[:-4].rsplit("-", 1)[1]
        assert platform_tag in ("any", "win_amd64"), name


class Layout:
    """The installer's three locations under one temporary root holding only an `etc`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "etc").mkdir(parents=True)  # like /etc; usr/local/bin the installer creates
        self.prefix = root / "Application Support" / "gatekey"
        self.bin_dir = root / "usr" / "local" / "bin"
        self.config_dir = root / "etc" / "gatekey"

    @property
    def config(self) -> Path:
        return self.config_dir / "config.toml"

    def install(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["sh", str(LINUX_INSTALLER), "--prefix", str(self.prefix)]
        argv += ["--bin-dir", str(self.bin_dir), "--config-dir", str(self.config_dir), *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEY_")}
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=180
        )
        if check:
            assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stderr}"
        return proc

    def left_behind(self) -> list[str]:
        """What is under the root besides the `etc` that was there before."""
        paths = [p for p in self.root.rglob("*") if p != self.root / "etc"]
        return sorted(str(p.relative_to(self.root)) for p in paths)


def run_helper(
    path: Path, env: dict[str, str], *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The installed executable by absolute path, with only ``env`` (as `env -i` would)."""
    return subprocess.run(
        [str(path), *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        env=env,
        cwd="/",
        timeout=60,
    )


def assert_admin_owned(layout: Layout) -> None:
    """Nothing the installer wrote is writable by group or others; as root, owned by root."""
    for path in [layout.prefix, *layout.prefix.rglob("*"), layout.config_dir, layout.config]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        assert not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH), f"{path} is writable by others"
        if os.geteuid() == 0:
            assert st.st_uid == 0, f"{path} is not owned by root"
    assert stat.S_IMODE(layout.config.stat().st_mode) == 0o644


@pytest.mark.keychain
@pytest.mark.blackbox
def test_install_run_upgrade_uninstall(
    wheelhouse: Path, secret_service: Env, tmp_path: Path
) -> None:
    layout = Layout(tmp_path / "system")
    given = tmp_path / "given.toml"
    given.write_text(CONFIG)

    proc = layout.install("--wheelhouse", str(wheelhouse), "--config", str(given))
    assert "creating the virtual environment" in proc.stderr
    assert layout.config.read_text() == CONFIG
    assert_admin_owned(layout)
    for name in EXES:
        link = layout.bin_dir / name
        assert link.is_symlink(), f"{link} is not a link"
        assert os.readlink(link) == str(layout.prefix / "bin" / name)
    # The venv starts its own interpreter, not the one running these tests.
    venv_cfg = (layout.prefix / "pyvenv.cfg").read_text()
    assert "home =" in venv_cfg
    assert "/shims" not in venv_cfg

    # Exactly what the app has: the helper's absolute path, no arguments, stdin closed, and an
    # empty environment but for the session bus the keychain needs and HOME. The managed config
    # stands in for /etc/gatekey/config.toml (the installer put it in a temporary --config-dir).
    env = {
        "HOME": secret_service.vars["HOME"],
        "DBUS_SESSION_BUS_ADDRESS": secret_service.vars["DBUS_SESSION_BUS_ADDRESS"],
        "GATEKEY_MANAGED_CONFIG": str(layout.config),
    }
    stored = run_helper(layout.bin_dir / "gatekey", env, "store", stdin=SECRET.encode())
    assert stored.returncode == 0, stored.stderr
    assert SECRET.encode() not in stored.stdout + stored.stderr
    for helper in (layout.bin_dir / "gatekey", layout.prefix / "bin" / "gatekey-keychain"):
        for context in (None, "background"):
            run_env = env if context is None else dict(env, CLAUDE_HELPER_CONTEXT=context)
            got = run_helper(helper, run_env)
            assert got.returncode == 0, f"{helper}: {got.stderr!r}"
            assert got.stdout == SECRET.encode() + b"\n"
            assert SECRET.encode() not in got.stderr

    # Re-run = upgrade in place: the same venv, the config kept, the helper still works.
    venv_inode = (layout.prefix / "pyvenv.cfg").stat().st_ino
    wheel = next(wheelhouse.glob("gatekey-*.whl"))
    proc = layout.install("--wheel", str(wheel), "--wheelhouse", str(wheelhouse))
    assert "upgrading in place" in proc.stderr
    assert f"kept {layout.config}" in proc.stderr
    assert (layout.prefix / "pyvenv.cfg").stat().st_ino == venv_inode
    assert layout.config.read_text() == CONFIG
    assert_admin_owned(layout)
    got = run_helper(layout.bin_dir / "gatekey", env)
    assert (got.returncode, got.stdout) == (0, SECRET.encode() + b"\n"), got.stderr

    # A new config replaces the old one.
    given.write_text(CONFIG.replace('account = "corp"', 'account = "corp"\nmin_ttl = "70m"'))
    layout.install("--wheelhouse", str(wheelhouse), "--config", str(given))
    assert "min_ttl" in layout.config.read_text()

    # --uninstall removes the venv and the links and keeps the config; --purge removes that too,
    # and with it every directory the install created.
    proc = layout.install("--uninstall")
    assert layout.left_behind() == ["etc/gatekey", "etc/gatekey/config.toml"]
    assert "--purge" in proc.stderr
    layout.install("--uninstall", "--purge")
    assert layout.left_behind() == []
    proc = layout.install("--uninstall")  # idempotent too
    assert "nothing installed" in proc.stderr


def test_refuses_a_config_that_does_not_validate(wheelhouse: Path, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "system")
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_CONFIG)
    proc = layout.install("--wheelhouse", str(wheelhouse), "--config", str(bad), check=False)
    assert proc.returncode != 0
    assert "acount" in proc.stderr, proc.stderr  # gatekey's own message, naming the key
    assert f"{bad} does not validate" in proc.stderr
    assert not layout.config.exists()
    assert not list(layout.config_dir.glob(".*")), "a staged copy was left behind"
    # A valid config installs; a bad one later leaves it in place.
    good = tmp_path / "good.toml"
    good.write_text(CONFIG)
    layout.install("--wheelhouse", str(wheelhouse), "--config", str(good))
    proc = layout.install("--wheelhouse", str(wheelhouse), "--config", str(bad), check=False)
    assert proc.returncode != 0
    assert layout.config.read_text() == CONFIG


def test_missing_wheel_is_a_clear_error(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "system")
    missing = tmp_path / "gatekey-9.9.9-py3-none-any.whl"
    proc = layout.install("--wheel", str(missing), check=False)
    assert proc.returncode == 1
    assert f"no such wheel file: {missing}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert layout.left_behind() == [], "nothing may be created before the arguments are checked"
    proc = layout.install("--wheelhouse", str(tmp_path / "nowhere"), check=False)
    assert proc.returncode == 1
    assert "no such wheelhouse directory" in proc.stderr


def test_unknown_option_and_help(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "system")
    proc = layout.install("--frobnicate", check=False)
    assert proc.returncode == 1
    assert "unknown option: --frobnicate" in proc.stderr
    proc = layout.install("--help")
    assert "--wheelhouse DIR" in proc.stdout
    assert "/opt/gatekey" in proc.stdout


def shell_scripts() -> list[Path]:
    return sorted(p for p in INSTALL.rglob("*.sh"))


def test_shell_scripts_are_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed; run the README's test command (it installs it)")
    scripts = shell_scripts()
    assert len(scripts) >= 5, scripts
    proc = subprocess.run(
        [shellcheck, "--shell=sh", "--severity=style", *map(str, scripts)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shell_scripts_are_posix_sh_with_set_eu() -> None:
    for script in shell_scripts():
        text = script.read_text()
        assert text.startswith("#!/bin/sh\n"), f"{script}: not a POSIX sh script"
        assert "\nset -eu\n" in text, f"{script}: no `set -eu`"
        assert os.access(script, os.X_OK), f"{script} is not executable"
