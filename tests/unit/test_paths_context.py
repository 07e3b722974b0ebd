"""Where files live (paths.py) and what a run may do, by when (context.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest

from gatekey import config, context, paths
from gatekey.errors import DeadlineExceeded

xdg_only = pytest.mark.skipif(
    sys.platform in ("darwin", "win32"), reason="the XDG rules are Linux/BSD ones"
)


# --- paths ----------------------------------------------------------------------------------
@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "GATEKEY_CACHE_DIR", "GATEKEY_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return home


def platformdirs_dirs() -> tuple[str, str]:
    return (
        platformdirs.user_config_dir("gatekey", appauthor=False),
        platformdirs.user_cache_dir("gatekey", appauthor=False),
    )


@xdg_only
def test_dirs_match_platformdirs_without_xdg_variables(home: Path) -> None:
    assert (paths.user_config_dir(), paths.cache_dir()) == platformdirs_dirs()
    assert paths.user_config_dir() == str(home / ".config" / "gatekey")
    assert paths.cache_dir() == str(home / ".cache" / "gatekey")


@xdg_only
def test_dirs_match_platformdirs_with_xdg_variables(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cch"))
    assert (paths.user_config_dir(), paths.cache_dir()) == platformdirs_dirs()
    assert paths.user_config_dir() == str(tmp_path / "cfg" / "gatekey")
    assert paths.cache_dir() == str(tmp_path / "cch" / "gatekey")


@xdg_only
@pytest.mark.parametrize("value", ["", "   "])
def test_blank_xdg_variables_are_ignored_like_platformdirs(
    home: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", value)
    monkeypatch.setenv("XDG_CACHE_HOME", value)
    assert (paths.user_config_dir(), paths.cache_dir()) == platformdirs_dirs()
    assert paths.user_config_dir() == str(home / ".config" / "gatekey")


@xdg_only
def test_GATEKEY_CACHE_DIR_overrides_the_cache_dir(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cch"))
    monkeypatch.setenv("GATEKEY_CACHE_DIR", str(tmp_path / "mine"))
    assert paths.cache_dir() == str(tmp_path / "mine")
    monkeypatch.setenv("GATEKEY_CACHE_DIR", "")
    assert paths.cache_dir() == str(tmp_path / "cch" / "gatekey")


@xdg_only
def test_user_config_file(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert paths.user_config_file() == str(home / ".config" / "gatekey" / "config.toml")
    monkeypatch.setenv("GATEKEY_CONFIG", str(tmp_path / "x.toml"))
    assert paths.user_config_file() == str(tmp_path / "x.toml")


@xdg_only
def test_managed_config_file_on_linux() -> None:
    assert paths.managed_config_file() == "/etc/gatekey/config.toml"


@xdg_only
def test_GATEKEY_MANAGED_CONFIG_stands_in_for_a_missing_managed_file(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paths, "managed_config_file", lambda: str(tmp_path / "absent.toml"))
    monkeypatch.setenv("GATEKEY_MANAGED_CONFIG", str(tmp_path / "stand-in.toml"))
    assert paths.config_files() == [
        (str(tmp_path / "stand-in.toml"), False),
        (str(home / ".config" / "gatekey" / "config.toml"), False),
    ]


@xdg_only
def test_GATEKEY_MANAGED_CONFIG_never_shadows_a_real_managed_file(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real-managed.toml"
    real.write_text("")
    monkeypatch.setattr(paths, "managed_config_file", lambda: str(real))
    monkeypatch.setenv("GATEKEY_MANAGED_CONFIG", str(tmp_path / "stand-in.toml"))
    assert paths.config_files()[0] == (str(real), False)


@xdg_only
def test_without_GATEKEY_MANAGED_CONFIG_the_real_managed_file_is_listed(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEKEY_MANAGED_CONFIG", raising=False)
    monkeypatch.setattr(paths, "managed_config_file", lambda: str(tmp_path / "absent.toml"))
    assert paths.config_files()[0] == (str(tmp_path / "absent.toml"), False)


@xdg_only
def test_the_user_file_is_required_only_when_named_by_GATEKEY_CONFIG(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert paths.config_files()[1][1] is False
    monkeypatch.setenv("GATEKEY_CONFIG", str(tmp_path / "x.toml"))
    assert paths.config_files()[1] == (str(tmp_path / "x.toml"), True)


def test_paths_does_not_import_platformdirs() -> None:
    # The cache hit imports paths; platformdirs is only for this test module.
    code = "import sys, gatekey.paths, gatekey.context; print('platformdirs' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- context --------------------------------------------------------------------------------
class Stream:
    def __init__(self, tty: bool | Exception) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        if isinstance(self.tty, Exception):
            raise self.tty
        return self.tty


@pytest.fixture
def ttys(monkeypatch: pytest.MonkeyPatch):
    """Set whether stdin / stderr are terminals; no terminal by default."""

    def set_ttys(stdin: bool | Exception | None = False, stderr: bool | Exception = False) -> None:
        monkeypatch.setattr(sys, "stdin", None if stdin is None else Stream(stdin))
        monkeypatch.setattr(sys, "stderr", Stream(stderr))

    set_ttys()
    return set_ttys


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    def set_context(value: str | None) -> None:
        if value is None:
            monkeypatch.delenv(context.ENV, raising=False)
        else:
            monkeypatch.setenv(context.ENV, value)

    return set_context


@pytest.mark.parametrize(
    ("value", "interactive", "timeout", "bypass"),
    [
        ("interactive", True, 120.0, False),
        ("mid-session-refresh", False, 15.0, True),
        ("scheduled-task", False, 10.0, False),
        ("setup-test", False, 10.0, False),
        ("background", False, 10.0, False),
    ],
)
@pytest.mark.parametrize("tty", [False, True])
def test_each_context(
    env, ttys, value: str, interactive: bool, timeout: float, bypass: bool, tty: bool
) -> None:
    env(value)
    ttys(stdin=tty, stderr=tty)  # a terminal changes nothing once the context is set
    run = context.resolve(None)
    assert (run.name, run.interactive, run.timeout, run.bypass_cache) == (
        value,
        interactive,
        timeout,
        bypass,
    )
    assert run.force_refresh is False


@pytest.mark.parametrize("value", [" Interactive ", "INTERACTIVE", "interactive\n"])
def test_context_values_are_normalised(env, ttys, value: str) -> None:
    env(value)
    run = context.resolve(None)
    assert (run.name, run.interactive) == ("interactive", True)


@pytest.mark.parametrize("value", ["foreground", "interactive-ish", "mid_session_refresh", "1"])
@pytest.mark.parametrize("tty", [False, True])
def test_unknown_contexts_are_silent(env, ttys, value: str, tty: bool) -> None:
    env(value)
    ttys(stdin=tty, stderr=tty)
    run = context.resolve(None)
    assert (run.name, run.interactive, run.timeout, run.bypass_cache) == (
        "silent",
        False,
        10.0,
        False,
    )
    assert "does not know" in run.origin


@pytest.mark.parametrize("value", [None, "", "   "])
@pytest.mark.parametrize(
    ("stdin", "stderr", "interactive"),
    [
        (True, False, True),
        (False, True, True),
        (True, True, True),
        (False, False, False),
        (None, False, False),  # no stdin at all
        (ValueError("I/O operation on closed file"), False, False),
        (ValueError("closed"), True, True),
        (OSError("bad fd"), OSError("bad fd"), False),
    ],
)
def test_unset_context_depends_on_a_terminal(
    env, ttys, value: str | None, stdin: object, stderr: object, interactive: bool
) -> None:
    env(value)
    ttys(stdin=stdin, stderr=stderr)
    run = context.resolve(None)
    assert run.interactive is interactive
    # Messages read "(interactive time limit)" / "(silent time limit)"; origin says why.
    assert run.name == ("interactive" if interactive else "silent")
    assert run.origin == (
        "CLAUDE_HELPER_CONTEXT unset, " + ("a terminal" if interactive else "no terminal")
    )
    assert run.timeout == (120.0 if interactive else 10.0)
    assert run.bypass_cache is False


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> config.Config:
    path = tmp_path / "c.toml"
    path.write_text('[timeouts]\ninteractive = "3m"\nmid_session_refresh = "12s"\nsilent = 4\n')
    monkeypatch.setattr(paths, "managed_config_file", lambda: str(tmp_path / "absent"))
    monkeypatch.setenv("GATEKEY_MANAGED_CONFIG", str(tmp_path / "absent-too"))
    monkeypatch.setenv("GATEKEY_CONFIG", str(path))
    return config.load()


@pytest.mark.parametrize(
    ("value", "tty", "timeout"),
    [
        ("interactive", False, 180.0),
        ("mid-session-refresh", False, 12.0),
        ("scheduled-task", False, 4.0),
        ("setup-test", False, 4.0),
        ("background", False, 4.0),
        ("brand-new-context", False, 4.0),
        (None, True, 180.0),
        (None, False, 4.0),
    ],
)
def test_config_timeouts_apply(
    env, ttys, cfg: config.Config, value: str | None, tty: bool, timeout: float
) -> None:
    env(value)
    ttys(stdin=tty)
    assert context.resolve(cfg).timeout == timeout


@pytest.mark.parametrize("value", [*context.KNOWN, "other", None])
def test_force_refresh_bypasses_the_cache_in_every_context(env, ttys, value: str | None) -> None:
    env(value)
    run = context.resolve(None, force_refresh=True)
    assert run.force_refresh is True
    assert run.bypass_cache is True


def test_context_name() -> None:
    assert context.context_name({}) == "unset"
    assert context.context_name({context.ENV: ""}) == "unset"
    assert context.context_name({context.ENV: " Background "}) == "background"
    assert context.context_name({context.ENV: "nope"}) == "unknown"


def test_run_context_deadline() -> None:
    run = context.RunContext("background", interactive=False, timeout=5)
    left = run.check("testing")
    assert 4 < left <= 5
    assert run.remaining() <= left
    expired = context.RunContext("mid-session-refresh", interactive=False, timeout=0)
    with pytest.raises(DeadlineExceeded) as info:
        expired.check("reading the keychain")
    assert str(info.value) == (
        "gave up after 0 s (mid-session-refresh time limit) while reading the keychain"
    )
    assert info.value.exit_code == 75


def test_run_context_repr() -> None:
    run = context.RunContext("setup-test", interactive=False, timeout=10)
    assert repr(run) == "RunContext('setup-test', interactive=False, timeout=10)"
