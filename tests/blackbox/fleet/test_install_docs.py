"""What the README and install/ tell people to run works as written (issue 14, item 1), and the
identity-side walkthroughs' profiles are valid config (item 15).

gatekey is not on PyPI, so nothing here may depend on an index's "gatekey": the README's install
commands build the wheel from a copy of this checkout and install it into a new venv, and the
installer and the wheelhouse builder, given no source outside a checkout, refuse rather than ask
an index for the name (test_fleet_packaging.py builds a wheelhouse from the checkout by default).
Dependencies come from the package index (or pip's cache), as in test_install.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from blackbox_env import REPO, Env, exe
from checkout import code_blocks, copy_checkout, real_python_dir, section

DOCS = REPO / "docs"
WALKTHROUGHS = ("entra-id.md", "okta.md", "keycloak.md")


def clean_env(home: Path) -> dict[str, str]:
    """A person's shell: a HOME of their own, the real python3 first on PATH, nothing of ours."""
    home.mkdir(parents=True, exist_ok=True)
    keep = ("LANG", "LC_ALL", "TMPDIR", "PIP_CACHE_DIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(HOME=str(home), PATH=f"{real_python_dir()}:/usr/local/bin:/usr/bin:/bin")
    return env


@pytest.mark.slow
def test_readme_install_commands_build_and_install_from_the_checkout(tmp_path: Path) -> None:
    """The README's install block, run as written in a fresh copy of the checkout: the wheel is
    built from it, `pip install ./dist/gatekey-*.whl` installs it into a new venv, and the
    installed executable runs. (The old block, `pip install gatekey`, fails: not on PyPI.)"""
    readme = (REPO / "README.md").read_text()
    install = section(readme, "Install")
    block = code_blocks(install, "sh")[0]
    assert "pip install ./dist/gatekey-" in block, block
    src = copy_checkout(tmp_path / "gatekey")
    env = clean_env(tmp_path / "home")
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=src,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    helper = tmp_path / "home" / ".local" / "gatekey" / "bin" / "gatekey"
    assert helper.is_file()
    assert os.access(helper, os.X_OK)
    version = subprocess.run(
        [str(helper), "version"], capture_output=True, text=True, env=env, timeout=60
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("gatekey "), version.stdout
    assert version.stdout in proc.stdout  # the block's last line showed the same version
    # The installed package is this checkout's, module for module.
    site = next((tmp_path / "home" / ".local" / "gatekey" / "lib").glob("python3*/site-packages"))
    installed = sorted(p.relative_to(site).as_posix() for p in (site / "gatekey").rglob("*.py"))
    ours = sorted(
        p.relative_to(REPO / "helpers").as_posix() for p in (REPO / "helpers/gatekey").rglob("*.py")
    )
    assert installed == ours


def test_readme_offers_pypi_only_as_the_day_it_is_published() -> None:
    """No block of the Install section that people run today installs "gatekey" by name; the
    one line that does is marked for the day gatekey is published."""
    install = section((REPO / "README.md").read_text(), "Install")
    for block in code_blocks(install, "sh"):
        assert "install gatekey" not in block, block
    marked = [line for line in install.splitlines() if line.startswith("> **The day gatekey is on")]
    assert marked, "the README no longer says how to install once gatekey is published"
    assert "(not yet)" in marked[0]
    assert "not published on PyPI" in install


def test_wheelhouse_builder_outside_a_checkout_wants_from(tmp_path: Path) -> None:
    """A copy of the builder away from a checkout does not fall back to an index's "gatekey"."""
    script = tmp_path / "install" / "build-wheelhouse.sh"
    script.parent.mkdir()
    script.write_bytes((REPO / "install" / "build-wheelhouse.sh").read_bytes())
    argv = ["sh", str(script), "--platform", "win_amd64", "--python-version", "3.12"]
    argv += ["--out", str(tmp_path / "wh"), "--pip-python", sys.executable]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "is not a gatekey checkout; pass --from" in proc.stderr, proc.stderr
    assert not (tmp_path / "wh").exists()


def test_installer_outside_a_checkout_never_asks_an_index_for_gatekey(tmp_path: Path) -> None:
    """The installer copied on its own (as config management and packages flatten it), with no
    --wheel, --wheelhouse or --index-url: it names what to pass, and creates nothing."""
    installer = tmp_path / "install-unix.sh"
    installer.write_bytes((REPO / "install" / "common" / "install-unix.sh").read_bytes())
    root = tmp_path / "system"
    argv = ["sh", str(installer), "--platform", "linux", "--prefix", str(root / "opt")]
    argv += ["--bin-dir", str(root / "bin"), "--config-dir", str(root / "etc")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "--wheel FILE or --wheelhouse DIR" in proc.stderr, proc.stderr
    assert "not on PyPI" in proc.stderr
    assert not root.exists()


def walkthrough_profiles() -> list[tuple[str, int, str]]:
    found = []
    for name in WALKTHROUGHS:
        for i, block in enumerate(code_blocks((DOCS / name).read_text(), "toml")):
            found.append((name, i, block))
    return found


def test_every_walkthrough_ends_with_a_profile() -> None:
    assert (DOCS / "README.md").is_file()
    for name in WALKTHROUGHS:
        text = (DOCS / name).read_text()
        assert code_blocks(text, "toml"), f"{name} has no gatekey profile"
        assert "What the gateway validates" in text, name


PROFILES = walkthrough_profiles()


@pytest.mark.parametrize(
    ("doc", "index", "toml"), PROFILES, ids=[f"{doc}#{i + 1}" for doc, i, _ in PROFILES]
)
def test_walkthrough_profile_validates(gk: Env, doc: str, index: int, toml: str) -> None:
    """Each profile the docs give is accepted by `gatekey config validate` as written."""
    config = gk.root / f"{Path(doc).stem}-{index}.toml"
    config.write_text(toml)
    env = dict(gk.vars, GATEKEY_CONFIG=str(config))
    proc = subprocess.run(
        [exe(), "config", "validate"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"{doc}, block {index + 1}: {proc.stderr}"
    assert "configuration is valid" in proc.stderr
