"""The self-contained bundle (install/build-bundle.sh) through the Linux installer, end to end,
and the supply chain around it: the archive's SHA-256 is checked before anything is unpacked,
every package of the bundle's hash lock is in its SBOM, and pip's hash checking refuses a wheel
whose bytes differ from the lock's.

The bundle is the one scripts/test.sh built for this checkout (dist/test-bundle, cached by its
inputs), or one built here into a temporary folder (about 30 s, its build venv cached).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from blackbox_env import REPO, Env
from bundle_build import BUILD_S

pytestmark = [pytest.mark.slow, pytest.mark.blackbox]

INSTALL = REPO / "install"
LINUX_INSTALLER = INSTALL / "linux" / "install.sh"


def install(bundle: Path, root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = ["sh", str(LINUX_INSTALLER), "--bundle", str(bundle), *locations(root), *extra]
    return subprocess.run(
        argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
    )


def locations(root: Path) -> list[str]:
    # A space in the prefix, as macOS's "/Library/Application Support/gatekey" has.
    return [
        "--prefix",
        str(root / "opt" / "gate key"),
        "--bin-dir",
        str(root / "bin"),
        "--config-dir",
        str(root / "etc"),
    ]


def run_helper(path: Path, gk: Env) -> subprocess.CompletedProcess[bytes]:
    """The installed helper by absolute path, as the app runs it: no arguments, stdin closed,
    an environment with nothing of this test's Python in it."""
    env = {
        "HOME": gk.vars["HOME"],
        "GATEKEY_CONFIG": str(gk.config_path),
        "GATEKEY_CACHE_DIR": gk.vars["GATEKEY_CACHE_DIR"],
        "CLAUDE_HELPER_CONTEXT": "background",
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [str(path)], env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=30
    )


def command_profile(gk: Env, token: str) -> None:
    gk.write_config(
        'default_profile = "cmd"\n[profiles.cmd]\nsource = "command"\n'
        f'command = ["/bin/echo", "{token}"]\nallow_insecure_cache = true\n',
        run_log=False,
    )


def test_the_bundle_installs_upgrades_and_uninstalls(bundle: Path, tmp_path: Path, gk: Env):
    root = tmp_path / "root"
    first = install(bundle, root)
    assert first.returncode == 0, first.stderr
    prefix = root / "opt" / "gate key"
    assert f"verified {bundle.name}" in first.stderr
    assert f"inferenceCredentialHelper: {prefix}/bin/gatekey" in first.stderr
    for name in ("gatekey", "gatekey-keychain", "gatekey-idp", "gatekey-vault"):
        link = root / "bin" / name
        assert link.is_symlink(), name
        assert os.readlink(link) == str(prefix / "bin" / name), name
    assert not (prefix / "pyvenv.cfg").exists()  # no Python of the machine's is involved
    command_profile(gk, "tok-bundle")
    proc = run_helper(root / "bin" / "gatekey", gk)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"tok-bundle\n", b"")
    assert not any(p.stat().st_mode & 0o022 for p in prefix.rglob("*") if not p.is_symlink())

    again = install(bundle, root)  # an upgrade in place
    assert again.returncode == 0, again.stderr
    assert "upgrading the bundle in place" in again.stderr
    assert sorted(p.name for p in prefix.iterdir()) == [
        ".gatekey-bundle",
        ".gatekey-install",
        "bin",
    ]
    proc = run_helper(prefix / "bin" / "gatekey", gk)
    assert (proc.returncode, proc.stdout) == (0, b"tok-bundle\n")

    gone = subprocess.run(
        ["sh", str(LINUX_INSTALLER), "--uninstall", "--purge", *locations(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gone.returncode == 0, gone.stderr
    assert "removed the bundle" in gone.stderr
    assert not prefix.exists()
    assert not (root / "bin").exists() or list((root / "bin").iterdir()) == []


def test_a_tampered_bundle_is_refused_before_anything_is_installed(bundle: Path, tmp_path: Path):
    tampered = tmp_path / bundle.name
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    shutil.copy(f"{bundle}.sha256", f"{tampered}.sha256")
    root = tmp_path / "root"
    proc = install(tampered, root)
    assert proc.returncode == 1
    assert f"{tampered} does not match its SHA-256" in proc.stderr, proc.stderr
    assert not (root / "opt").exists()
    assert not (root / "bin").exists()

    wrong = install(bundle, root, "--sha256", "0" * 64)  # a hash given by the admin decides too
    assert wrong.returncode == 1
    assert "does not match its SHA-256" in wrong.stderr
    unchecked = tmp_path / "no-hash" / bundle.name
    unchecked.parent.mkdir()
    shutil.copy(bundle, unchecked)
    missing = install(unchecked, root)
    assert missing.returncode == 1
    assert f"no {unchecked}.sha256" in missing.stderr


def pinned(lock: Path) -> dict[str, str]:
    """name -> version of every package a hash-locked requirements file pins."""
    found = {}
    for line in lock.read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)", line):
            assert "--hash=sha256:" in lock.read_text().split(line, 1)[1].split("==", 1)[0]
            found[normalise(m[1])] = m[2]
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_package_of_the_bundle_lock_is_in_its_sbom(bundle: Path):
    sbom = json.loads(Path(str(bundle).removesuffix(".tar.gz") + ".cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["metadata"]["component"]["name"] == "gatekey"
    components = {normalise(c["name"]): c["version"] for c in sbom["components"]}
    extras = "-aws" if "boto3" in components else ""
    lock = pinned(INSTALL / "locks" / f"bundle-linux{extras}.txt")
    assert lock, "the lock pins nothing"
    missing = {name: v for name, v in lock.items() if components.get(name) != v}
    assert missing == {}, f"pinned in the lock but not (at that version) in the SBOM: {missing}"


def test_every_lock_pins_each_package_with_hashes():
    for lock in sorted((INSTALL / "locks").glob("*.txt")):
        text = lock.read_text()
        blocks = re.split(r"\n(?=[A-Za-z0-9])", text.strip())
        assert blocks, lock
        for block in blocks:
            assert re.match(r"^[A-Za-z0-9_.-]+==\S+ \\\n", block), f"{lock.name}: {block[:80]}"
            assert "--hash=sha256:" in block, f"{lock.name}: {block.splitlines()[0]} has no hash"


def test_pip_refuses_a_wheel_whose_bytes_differ_from_the_lock(tmp_path: Path):
    """What --require-hashes buys the offline installs: the wheel of a pinned package, one byte
    changed, is refused (and a genuine one is accepted)."""
    lock = (INSTALL / "locks" / "wheelhouse-linux.txt").read_text()
    block = next(b for b in re.split(r"\n(?=[A-Za-z0-9])", lock) if b.startswith("idna=="))
    requirement = "\n".join(line for line in block.splitlines() if "# via" not in line) + "\n"
    (tmp_path / "req.txt").write_text(requirement)
    wheels = tmp_path / "wheels"
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
         "--only-binary=:all:", "-d", str(wheels), "-r", str(tmp_path / "req.txt")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    [wheel] = wheels.glob("idna-*.whl")

    def install_offline() -> subprocess.CompletedProcess[str]:
        target = tmp_path / "target"
        shutil.rmtree(target, ignore_errors=True)
        return subprocess.run(
            [sys.executable, "-m", "pip", "install", "--isolated", "--quiet", "--no-index",
             "--find-links", str(wheels), "--require-hashes", "--target", str(target),
             "-r", str(tmp_path / "req.txt")],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    assert install_offline().returncode == 0
    data = bytearray(wheel.read_bytes())
    data[-100] ^= 0x01
    wheel.write_bytes(bytes(data))
    refused = install_offline()
    assert refused.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in refused.stderr, refused.stderr


@pytest.fixture(scope="module")
def supply_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one documented command, with the committed locks (--no-lock: lock.sh rewrites them
    from PyPI, which a test must not do to the checkout)."""
    out = tmp_path_factory.mktemp("supply-chain")
    proc = subprocess.run(
        ["bash", str(INSTALL / "supply-chain.sh"), "--no-lock", "--out", str(out)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=BUILD_S,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def sbom_components(path: Path) -> dict[str, str]:
    sbom = json.loads(path.read_text())
    assert sbom["bomFormat"] == "CycloneDX", path
    assert sbom["metadata"]["component"]["name"] == "gatekey", path
    return {normalise(c["name"]): c["version"] for c in sbom["components"]}


def test_every_package_of_each_lock_is_in_its_sbom(supply_chain: Path):
    """install/supply-chain.sh: a wheelhouse per OS (and with the aws extra), each with its
    requirements.txt and SBOM; an SBOM per bundle lock; the wheel's SBOM. Each SBOM holds every
    package its lock pins, at that version (the tools locks have none: they build, not ship)."""
    checked = []
    for lock in sorted((INSTALL / "locks").glob("*.txt")):
        kind = lock.stem.split("-", 1)[0]
        if kind == "tools":
            continue
        sbom = (
            supply_chain / lock.stem / "requirements.cdx.json"
            if kind == "wheelhouse"
            else supply_chain / f"{lock.stem}.cdx.json"
        )
        components = sbom_components(sbom)
        want = pinned(lock)
        assert want, f"{lock.name} pins nothing"
        missing = {name: v for name, v in want.items() if components.get(name) != v}
        assert missing == {}, f"{lock.name}: not in {sbom.name} at that version: {missing}"
        checked.append(lock.stem)
    assert len(checked) == 12, checked  # wheelhouse and bundle, 3 OSes, with and without aws

    # The wheelhouse's SBOM names the very gatekey wheel it holds, by its SHA-256.
    [wheel] = (supply_chain / "wheelhouse-linux").glob("gatekey-*.whl")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    sbom = json.loads((supply_chain / "wheelhouse-linux" / "requirements.cdx.json").read_text())
    [gatekey] = [c for c in sbom["components"] if c["name"] == "gatekey"]
    hashes = {h["content"] for ref in gatekey["externalReferences"] for h in ref["hashes"]}
    assert hashes == {digest}
    assert (supply_chain / wheel.name).read_bytes() == wheel.read_bytes()

    # The wheel's SBOM: the wheel installed with this machine's lock, every package in it.
    components = sbom_components(supply_chain / f"{wheel.name.removesuffix('.whl')}.cdx.json")
    lock = pinned(INSTALL / "locks" / "wheelhouse-linux.txt")
    assert {n: v for n, v in lock.items() if components.get(n) != v} == {}
