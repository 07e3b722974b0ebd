"""The bundle through the macOS and Windows installers, as far as Linux can take them (issue 16).

`install/macos/build-pkg.sh --bundle FILE --stage DIR` writes the package's scripts folder; its
postinstall runs as Installer runs it (`$3` a temporary volume), checks the bundle against its
SHA-256 and unpacks it under the volume, and the uninstaller it leaves removes it and forgets the
receipt (a stand-in `pkgutil` records the call). The bundle is this machine's (Linux): the
scripts are the same on a Mac, only the executables differ.

`install/windows/install.ps1 -Bundle FILE` cannot run here (no PowerShell): its structure is held
parallel to `install/common/install-unix.sh`: the same options, the hash checked with
Get-FileHash before Expand-Archive, the same marker and messages, the same uninstall.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from blackbox_env import REPO

INSTALL = REPO / "install"
MACOS = INSTALL / "macos"
PS1 = INSTALL / "windows" / "install.ps1"
UNIX = INSTALL / "common" / "install-unix.sh"
MAC_PREFIX = Path("Library/Application Support/gatekey")
PKG_ID = "com.example.gatekey-bundle"
EXES = ("gatekey", "gatekey-keychain", "gatekey-idp", "gatekey-vault")


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
    )


# --- macOS: the .pkg wraps a bundle --------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.blackbox
def test_pkg_postinstall_installs_a_bundle_and_leaves_an_uninstaller(bundle: Path, tmp_path: Path):
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    log = tmp_path / "pkgutil.log"
    (bin_dir / "pkgutil").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >>"{log}"\n')
    (bin_dir / "pkgutil").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEY_")}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    config = tmp_path / "corp.toml"
    config.write_text('default_profile = "corp"\n\n[profiles.corp]\nsource = "keychain"\n')

    scripts = tmp_path / "scripts"
    argv = ["sh", str(MACOS / "build-pkg.sh"), "--bundle", str(bundle), "--version", "0.1.0"]
    argv += ["--config", str(config), "--identifier", PKG_ID, "--stage", str(scripts)]
    proc = run(argv)
    assert proc.returncode == 0, proc.stderr
    staged = sorted(p.name for p in scripts.iterdir())
    assert staged == [
        "bundle.tar.gz",
        "bundle.tar.gz.sha256",
        "config.toml",
        "identifier.txt",
        "jamf-gatekey.sh",
        "postinstall",
    ]
    assert (scripts / "bundle.tar.gz").read_bytes() == bundle.read_bytes()

    # Installer runs the postinstall with: the package, the install location, the target volume.
    volume = tmp_path / "vol"
    (volume / "Library" / "Application Support").mkdir(parents=True)
    proc = run(["sh", str(scripts / "postinstall"), str(tmp_path / "g.pkg"), "/", str(volume)], env)
    assert proc.returncode == 0, proc.stderr
    assert "verified bundle.tar.gz" in proc.stderr
    prefix = volume / MAC_PREFIX
    assert (prefix / ".gatekey-bundle").read_text().startswith("gatekey-")
    assert not (prefix / "pyvenv.cfg").exists()
    got = run([str(prefix / "bin" / "gatekey"), "version"], env)
    assert (got.returncode, got.stdout.split()[0]) == (0, "gatekey"), got.stderr
    for name in EXES:
        assert os.readlink(volume / "usr" / "local" / "bin" / name) == str(prefix / "bin" / name)
    assert (prefix / "config.toml").read_text() == config.read_text()
    uninstaller = prefix / "uninstall-gatekey.sh"
    assert uninstaller.read_bytes() == (MACOS / "jamf-gatekey.sh").read_bytes()

    # The uninstaller left on disk removes the bundle, keeps the config, forgets the receipt.
    proc = run(["sh", str(uninstaller)], env)
    assert proc.returncode == 0, proc.stderr
    assert "removed the bundle" in proc.stderr
    assert sorted(p.name for p in prefix.iterdir()) == ["config.toml"]
    assert log.read_text() == f"--volume {volume} --forget {PKG_ID}\n"


def test_build_pkg_refuses_a_bundle_its_checksum_refuses(bundle: Path, tmp_path: Path):
    tampered = tmp_path / bundle.name
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    shutil.copy(f"{bundle}.sha256", f"{tampered}.sha256")
    argv = ["sh", str(MACOS / "build-pkg.sh"), "--bundle", str(tampered), "--version", "1"]
    proc = run([*argv, "--stage", str(tmp_path / "scripts")])
    assert proc.returncode == 1
    assert f"{tampered} does not match its SHA-256" in proc.stderr, proc.stderr
    assert not (tmp_path / "scripts").exists()
    wheelhouse = tmp_path / "wh"
    wheelhouse.mkdir()
    proc = run([*argv, "--wheelhouse", str(wheelhouse), "--stage", str(tmp_path / "s2")])
    assert proc.returncode == 1
    assert "--bundle brings its own Python" in proc.stderr


# --- Windows: install.ps1 -Bundle, held parallel to install-unix.sh --------------------------
def ps1() -> str:
    return PS1.read_text()


def ps1_params() -> set[str]:
    block = re.search(r"(?s)\nparam\((.*?)\n\)", ps1())
    assert block, "install.ps1 has no param() block"
    return set(re.findall(r"\$(\w+)", block.group(1)))


def unix_options() -> set[str]:
    return set(re.findall(r"^    (--[a-z0-9-]+)\) ", UNIX.read_text(), re.M))


def test_install_ps1_takes_the_options_install_unix_takes():
    """Every option of install-unix.sh has its PowerShell parameter (--bin-dir aside: Windows
    has no links; --platform: the script is Windows')."""
    pascal = {
        "--" + re.sub(r"(?<!^)(?=[A-Z])", "-", p).lower(): p for p in ps1_params()
    }  # Sha256 -> --sha256, IndexUrl -> --index-url
    pascal["--sha256"] = "Sha256"
    missing = unix_options() - {"--bin-dir", "--platform"} - set(pascal)
    assert missing == set(), f"install.ps1 has no parameter for {missing}"
    assert {"Bundle", "Sha256"} <= ps1_params()


def test_install_ps1_checks_the_bundle_hash_before_unpacking():
    text = ps1()
    body = text[text.index("function Install-Bundle") :]
    body = body[: body.index("\n}\n")]
    hashed = body.index("Get-FileHash -LiteralPath $Bundle -Algorithm SHA256")
    refused = body.index("does not match its SHA-256")
    unpacked = body.index("Expand-Archive -LiteralPath $Bundle")
    assert hashed < refused < unpacked, "the hash is not checked before the archive is unpacked"
    # The same sources of the expected hash as install-unix.sh: -Sha256, else FILE.sha256.
    assert '"$Bundle.sha256"' in body
    assert "$Sha256" in body
    assert "pass -Sha256 HEX" in body
    assert ".zip" in body  # what build-bundle.sh writes on Windows
    # Unpacked into <Prefix>\bin, marked as install-unix.sh marks a bundle, the old bin swapped.
    assert "$BundleBin = Join-Path $Prefix 'bin'" in text
    mark = re.search(r"^BUNDLE_MARK=(\S+)$", UNIX.read_text(), re.M)
    assert mark
    assert f"Join-Path $Prefix '{mark.group(1)}'" in text
    assert "Move-Item -LiteralPath $folder -Destination $BundleBin" in body
    assert "gatekey.exe') version" in body  # the unpacked helper runs before it replaces bin


def test_install_ps1_bundle_shares_config_and_uninstall():
    text = ps1()
    # -Bundle refuses what brings a Python, as --bundle does; -Sha256 goes with it.
    for phrase in ("-Bundle brings its own Python", "-Sha256 goes with -Bundle"):
        assert phrase in text
        assert phrase.replace("-Bundle", "--bundle").replace("-Sha256", "--sha256") in (
            UNIX.read_text()
        )
    assert "-Uninstall takes no -Wheel, -Wheelhouse, -IndexUrl, -Bundle or -Config" in text
    assert "removed $what $Prefix" in text
    assert "$what = 'the bundle'" in text
    # One config step for both: after the venv or the bundle, validated with the helper
    # installed ($Gatekey: the bundle's when -Bundle).
    assert "if ($Bundle) { $Gatekey = Join-Path $BundleBin 'gatekey.exe' }" in text
    assert text.index("Install-Bundle\n} else {") < text.index("function Test-GatekeyConfig")
    assert text.count("function Test-GatekeyConfig") == 1
    # The wheelhouse is installed by hash, as install-unix.sh does it.
    assert "--require-hashes -r $wanted" in text
    assert "has no requirements.txt" in text
