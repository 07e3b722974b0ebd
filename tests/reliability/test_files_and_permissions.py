"""Files and permissions (issue 7, item 7), black box.

- Everything gatekey creates is private from its creation: under ``strace``, with the most
  permissive umask (000), every file it creates in the cache or the run log is opened with mode
  0600 and every directory made with 0700, and nothing is widened afterwards.
- A cache directory that belongs to another user (planted where GATEKEY_CACHE_DIR points, or a
  link into their directory) is neither read nor written: a planted token is never printed.
- Symbolic links planted in the cache (an entry, the index) are not followed.
- An installation that others can change (its package, the directories above it, the
  executable's directory) is refused before anything runs, exit 78 naming the directory.
- A managed config writable by others: tests/unit/test_config.py
  (``test_a_managed_config_writable_by_others_is_refused``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from blackbox_env import Env, exe

NOBODY = 65534  # uid and gid of nobody / nogroup on Debian
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("strace"),
    reason="needs root (to hand files to another user) and strace; the test machine has both",
)


# --- created private, with no window ---------------------------------------------------------
CREATE = re.compile(
    r'^\d+\s+(openat|open|creat|mkdir|mkdirat)\((?:AT_FDCWD, )?"([^"]+)", (.*?)\) += '
)
WIDEN = re.compile(r"^\d+\s+(chmod|fchmodat|fchmod)\((.*)\)")


def traced(gk: Env, *args: str, **extra: str) -> tuple[int, list[tuple[str, str, str]], str]:
    """Run gatekey under strace with umask 000: (exit, [(call, path, rest)], chmod calls)."""
    trace = gk.root / f"strace-{len(list(gk.root.glob('strace-*')))}.txt"
    env = dict(gk.vars, CLAUDE_HELPER_CONTEXT="background", **extra)
    proc = subprocess.run(
        [
            "sh",
            "-c",
            "umask 000; exec strace -f -qq -e trace=open,openat,creat,mkdir,mkdirat,chmod,fchmod,"
            'fchmodat -o "$0" "$@"',
            str(trace),
            exe(),
            *args,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        cwd=gk.root,
        timeout=60,
    )
    calls, widen = [], []
    for line in trace.read_text().splitlines():
        if m := CREATE.match(line):
            calls.append((m[1], m[2], m[3]))
        elif m := WIDEN.match(line):
            widen.append(line)
    return proc.returncode, calls, "\n".join(widen)


def test_cache_and_run_log_are_private_from_creation(gk: Env) -> None:
    gk.write_config(
        'default_profile = "ok"\n'
        + gk.counting_profile("ok")
        + '[profiles.broken]\nsource = "command"\ncommand = ["/bin/false"]\n'
        "allow_insecure_cache = true\n"
    )
    code, calls, widen = traced(gk)  # a token, the index, a lock, the run log
    assert code == 0
    code2, calls2, widen2 = traced(gk, GATEKEY_PROFILE="broken")  # a remembered failure
    assert code2 == 1
    ours = (str(gk.cache_dir), str(gk.run_log))
    created = [
        (call, path, rest)
        for call, path, rest in calls + calls2
        if path.startswith(ours) and (call.startswith("mkdir") or "O_CREAT" in rest)
    ]
    kinds = {Path(p).parent.name for _, p, _ in created}
    assert {"tokens", "locks", "failures"} <= kinds, created  # the trace saw the writes
    assert any(p == str(gk.run_log) for _, p, _ in created)
    for call, path, rest in created:
        mode = rest.rsplit(", ", 1)[-1]
        expected = "0700" if call.startswith("mkdir") else "0600"
        assert mode == expected, f"{call} {path} with mode {mode} (umask 000)"
    for line in (widen + "\n" + widen2).split("\n"):
        if line and (m := re.search(r", (0[0-7]+)\)", line)):
            assert int(m[1], 8) & 0o077 == 0, f"widened: {line}"
    for path in [gk.cache_dir, *gk.cache_dir.rglob("*"), gk.run_log]:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"


# --- a cache directory that is not ours --------------------------------------------------------
def plant_cache(gk: Env, directory: Path, token: str) -> None:
    """Fill ``directory`` with a cache that serves ``token`` for this environment's config."""
    real = gk.cache_dir
    gk.run(context="background")  # the real cache: its index and entry say what a hit needs
    shutil.copytree(real, directory, dirs_exist_ok=True)
    for entry in (directory / "tokens").glob("*.json"):
        data = json.loads(entry.read_text())
        data["token"] = token
        entry.write_text(json.dumps(data))


@pytest.fixture
def foreign(gk: Env, tmp_path: Path) -> Iterator[Path]:
    """A directory that belongs to nobody, holding a planted cache."""
    gk.write_config(gk.counting_profile())
    directory = tmp_path / "foreign-cache"
    plant_cache(gk, directory, "planted-token-123")
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, NOBODY, NOBODY)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_a_cache_directory_of_another_user_is_neither_read_nor_written(
    gk: Env, foreign: Path
) -> None:
    before = sorted(p.name for p in foreign.rglob("*"))
    for _ in range(2):
        r = gk.run(context="background", GATEKEY_CACHE_DIR=str(foreign), TOKEN="our-token-456")
        assert r.code == 0, r.err
        assert r.stdout == b"our-token-456\n"
        assert len(r.err.splitlines()) == 1, r.err
        assert "belongs to another user (uid 65534)" in r.err, r.err
        assert "GATEKEY_CACHE_DIR" in r.err
    assert sorted(p.name for p in foreign.rglob("*")) == before
    assert all(p.stat().st_uid == NOBODY for p in foreign.rglob("*"))


def test_a_cache_directory_linked_into_another_users_directory_is_not_used(
    gk: Env, foreign: Path, tmp_path: Path
) -> None:
    link = tmp_path / "link-cache"
    link.symlink_to(foreign, target_is_directory=True)
    r = gk.run(context="background", GATEKEY_CACHE_DIR=str(link), TOKEN="our-token-789")
    assert (r.code, r.stdout) == (0, b"our-token-789\n"), r.err
    assert "belongs to another user" in r.err


def test_a_planted_link_in_the_cache_is_not_followed(gk: Env, tmp_path: Path) -> None:
    gk.write_config(gk.counting_profile())
    first = gk.run(context="background")
    assert first.code == 0
    entry = gk.entry_path()
    elsewhere = tmp_path / "elsewhere.json"
    data = json.loads(entry.read_text())
    data["token"] = "planted-token-abc"
    elsewhere.write_text(json.dumps(data))
    entry.unlink()
    entry.symlink_to(elsewhere)
    index = gk.cache_dir / "index.json"
    index_copy = tmp_path / "index-elsewhere.json"
    shutil.copy(index, index_copy)
    index.unlink()
    index.symlink_to(index_copy)
    r = gk.run(context="background", TOKEN="fresh-token-def")
    assert (r.code, r.stdout) == (0, b"fresh-token-def\n"), r.err
    assert json.loads(elsewhere.read_text())["token"] == "planted-token-abc"  # untouched
    assert not entry.is_symlink()
    assert not index.is_symlink()


# --- an installation others can change -------------------------------------------------------
@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the installed gatekey in a venv of its own (its dependencies from the suite's
    venv via a .pth file), with a console script like pip's: ``<prefix>/bin/gatekey``."""
    prefix = tmp_path_factory.mktemp("install") / "prefix"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True, timeout=60
    )
    purelib = Path(sysconfig.get_paths()["purelib"])
    site = next((prefix / "lib").glob("python3*/site-packages"))
    shutil.copytree(purelib / "gatekey", site / "gatekey")
    (site / "suite-deps.pth").write_text(f"{purelib}\n")
    script = prefix / "bin" / "gatekey"
    script.write_text(
        f"#!{prefix / 'bin' / 'python'}\nimport sys\nfrom gatekey.fastpath import main\n"
        "sys.exit(main())\n"
    )
    script.chmod(0o755)
    for path in [prefix, *prefix.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    return prefix


def run_installed(gk: Env, install: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(install / "bin" / "gatekey"), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=dict(gk.vars, CLAUDE_HELPER_CONTEXT="background"),
        cwd=gk.root,
        timeout=60,
    )


def site_dir(install: Path) -> Path:
    return next((install / "lib").glob("python3*/site-packages"))


@pytest.mark.parametrize(
    ("where", "mode", "group"),
    [
        ("package", 0o777, None),
        ("site-packages", 0o1777, None),  # sticky does not help: anyone may add a .pth
        ("prefix", 0o757, None),
        ("bin", 0o777, None),
        ("package", 0o775, NOBODY),  # a group other than the owner's own
    ],
)
def test_an_installation_others_can_change_is_refused(
    gk: Env, install: Path, where: str, mode: int, group: int | None
) -> None:
    gk.write_config(gk.counting_profile())
    target = {
        "package": site_dir(install) / "gatekey",
        "site-packages": site_dir(install),
        "prefix": install,
        "bin": install / "bin",
    }[where]
    assert run_installed(gk, install).returncode == 0  # works as installed
    if group is not None:
        os.chown(target, -1, group)
    target.chmod(mode)
    try:
        for args in ((), ("status",)):
            r = run_installed(gk, install, *args)
            err = r.stderr.decode()
            assert (r.returncode, r.stdout) == (78, b""), err
            assert err.startswith(f"gatekey: refusing to run: {target} is writable by "), err
            assert "chmod go-w" in err
            assert len(err.splitlines()) == 1
    finally:
        target.chmod(0o755)
        if group is not None:
            os.chown(target, -1, 0)
    assert run_installed(gk, install).returncode == 0


def test_a_directory_writable_by_the_owners_own_group_is_accepted(gk: Env, install: Path) -> None:
    """umask 002 with user-private groups (Debian's default for users) gives 0775 directories:
    the group is the owner alone. (root's own group is gid 0.)"""
    gk.write_config(gk.counting_profile())
    package = site_dir(install) / "gatekey"
    package.chmod(0o775)
    try:
        r = run_installed(gk, install)
        assert (r.returncode, r.stdout) == (0, b"tok-1\n"), r.stderr
    finally:
        package.chmod(0o755)
