"""Config loading, merging, validation and profile selection (config.py, durations.py).

In-process tests point paths.config_files() at files in tmp_path; the installed executable runs on
the same kinds of files in tests/blackbox/commands/test_config_cmds.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gatekey import config, paths
from gatekey.durations import parse_duration
from gatekey.errors import ConfigError
from profile_toml import command_profile, keychain_profile


class Files:
    """The managed and user config files of one test, and loading them."""

    def __init__(self, root: Path) -> None:
        self.managed_path = root / "managed.toml"
        self.user_path = root / "user.toml"

    def managed(self, text: str) -> Path:
        self.managed_path.write_text(text)
        return self.managed_path

    def user(self, text: str) -> Path:
        self.user_path.write_text(text)
        return self.user_path

    def load(self) -> config.Config:
        return config.load()


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Files:
    # Hermetic even on a machine that has a real /etc/gatekey/config.toml.
    monkeypatch.setattr(paths, "managed_config_file", lambda: str(tmp_path / "no-real-managed"))
    f = Files(tmp_path)
    monkeypatch.setenv("GATEKEY_MANAGED_CONFIG", str(f.managed_path))
    monkeypatch.setenv("GATEKEY_CONFIG", str(f.user_path))
    monkeypatch.delenv("GATEKEY_PROFILE", raising=False)
    return f


# --- merging and origins --------------------------------------------------------------------
def test_managed_file_wins_key_by_key_and_origins_are_reported(files: Files) -> None:
    managed = files.managed('[profiles.corp]\nservice = "managed-svc"\n')
    user = files.user(
        '[profiles.corp]\nsource = "keychain"\nservice = "user-svc"\naccount = "alice"\n'
    )
    prof = files.load().profile("corp")
    assert prof.values["service"] == "managed-svc"
    assert prof.values["account"] == "alice"
    assert prof.kind == "keychain"
    assert prof.origins["service"] == str(managed)
    assert prof.origins["account"] == str(user)
    assert prof.origins["source"] == str(user)
    assert prof.values["auth_scheme"] == "bearer"
    assert prof.origins["auth_scheme"] == config.BUILTIN_ORIGIN
    assert prof.values["min_ttl"] == config.DEFAULT_MIN_TTL


def test_profiles_from_both_files_are_merged_per_profile(files: Files) -> None:
    managed = files.managed(keychain_profile("admin", 'service = "a"'))
    user = files.user(command_profile("mine"))
    cfg = files.load()
    assert cfg.profile_names == ["admin", "mine"]
    assert cfg.profile("admin").origins["service"] == str(managed)
    assert cfg.profile("mine").origins["command"] == str(user)
    assert cfg.files == [str(managed), str(user)]  # highest precedence first
    assert cfg.describe_files() == f"{managed} + {user}"


def test_managed_top_level_and_timeouts_win(files: Files) -> None:
    managed = files.managed('default_profile = "b"\n[timeouts]\ninteractive = "1m"\n')
    user = files.user(
        'default_profile = "a"\n[timeouts]\ninteractive = "5m"\nsilent = "3s"\n'
        + keychain_profile("a")
        + keychain_profile("b")
    )
    cfg = files.load()
    assert cfg.default_profile == ("b", str(managed))
    assert cfg.timeout_with_origin("interactive") == (60.0, str(managed))
    assert cfg.timeout_with_origin("silent") == (3.0, str(user))
    assert cfg.timeout_with_origin("mid_session_refresh") == (15.0, config.BUILTIN_ORIGIN)
    assert config.select_profile(cfg) == "b"


def test_managed_source_overrides_the_users_source(files: Files) -> None:
    managed = files.managed('[profiles.corp]\nsource = "keychain"\n')
    files.user(command_profile("corp"))
    # The admin's source wins; the user's `command` key is then foreign to it.
    with pytest.raises(ConfigError) as info:
        files.load().profile("corp")
    assert info.value.key == "command"
    assert files.load().raw_kind("corp") == "keychain"
    assert files.load().profile_names == ["corp"]
    assert str(managed) not in str(info.value)  # the offending key is the user's


def test_embedded_default_profile_when_there_is_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paths, "managed_config_file", lambda: str(tmp_path / "absent-managed"))
    monkeypatch.delenv("GATEKEY_MANAGED_CONFIG", raising=False)
    monkeypatch.delenv("GATEKEY_CONFIG", raising=False)
    monkeypatch.delenv("GATEKEY_PROFILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    cfg = config.load()
    assert cfg.files == []
    assert cfg.profile_names == ["default"]
    assert config.select_profile(cfg) == "default"
    prof = cfg.profile("default")
    assert prof.kind == "keychain"
    assert prof.values["service"] == "gatekey"
    assert prof.values["account"] == "default"  # the profile's own name
    assert set(prof.origins.values()) == {config.BUILTIN_ORIGIN}


def test_embedded_default_profile_when_files_define_no_profiles(files: Files) -> None:
    files.managed("[timeouts]\nsilent = 4\n")
    files.user("")
    cfg = files.load()
    assert cfg.profile_names == ["default"]
    assert cfg.timeout("silent") == 4.0


def test_no_embedded_profile_once_a_file_defines_one(files: Files) -> None:
    files.user(command_profile("only"))
    assert files.load().profile_names == ["only"]


def test_user_file_at_the_default_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: Files
) -> None:
    monkeypatch.delenv("GATEKEY_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    default = tmp_path / "xdg" / "gatekey" / "config.toml"
    default.parent.mkdir(parents=True)
    default.write_text(keychain_profile("home"))
    cfg = files.load()
    assert cfg.files == [str(default)]
    assert cfg.profile("home").origins["source"] == str(default)


def test_missing_file_at_the_default_location_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: Files
) -> None:
    monkeypatch.delenv("GATEKEY_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty-xdg"))
    assert files.load().profile_names == ["default"]


def test_GATEKEY_CONFIG_naming_a_missing_file_is_a_config_error(files: Files) -> None:
    with pytest.raises(ConfigError) as info:
        files.load()
    assert info.value.file == str(files.user_path)
    assert str(files.user_path) in str(info.value)
    assert "not found" in str(info.value)
    assert "GATEKEY_CONFIG" in str(info.value)


def test_missing_managed_file_is_not_an_error(files: Files) -> None:
    files.user(keychain_profile("a"))
    assert files.load().files == [str(files.user_path)]


def test_config_show_values_keep_their_type(files: Files) -> None:
    files.user(
        '[profiles.c]\nsource = "command"\ncommand = ["t", "--x"]\nmin_ttl = "1h30m"\n'
        'cache_ttl = 60\nheaders = { X-Route = "prod" }\ncache = false\noutput = "json"\n'
    )
    prof = files.load().profile("c")
    assert prof.values["command"] == ["t", "--x"]
    assert prof.values["min_ttl"] == 5400.0
    assert prof.values["cache_ttl"] == 60.0
    assert prof.values["headers"] == {"X-Route": "prod"}
    assert prof.values["cache"] is False
    assert prof.values["output"] == "json"
    assert prof.values["parse"] == "raw"  # a source-specific default
    # Presentation keys stay out of the inputs that decide the credential.
    assert set(prof.source_settings()) == {
        "source",
        "command",
        "parse",
        "token_path",
        "expires_in_path",
        "expires_path",
        "timeout",
        "cache_ttl",
        "max_stale",
        "allow_insecure_cache",
    }


# --- validation errors ----------------------------------------------------------------------
PROFILE_ERRORS = [
    pytest.param(
        keychain_profile("corp", 'sevice = "x"'),
        "corp",
        "sevice",
        ["did you mean 'service'?", "unknown key for a keychain profile"],
        id="unknown-key-did-you-mean",
    ),
    pytest.param(
        keychain_profile("corp", "wibble = 1"),
        "corp",
        "wibble",
        ["unknown key", "allowed: account"],
        id="unknown-key-no-suggestion",
    ),
    pytest.param(
        keychain_profile("corp", 'cache = "yes"'),
        "corp",
        "cache",
        ["expected true or false, got a string"],
        id="bool-as-string",
    ),
    pytest.param(
        keychain_profile("corp", 'headers = "X: y"'),
        "corp",
        "headers",
        ["expected a table of strings"],
        id="headers-not-a-table",
    ),
    pytest.param(
        keychain_profile("corp", "headers = { X-N = 1 }"),
        "corp",
        "headers",
        ['entry "X-N" must be a string'],
        id="header-value-not-a-string",
    ),
    pytest.param(
        keychain_profile("corp", 'headers = { X-N = "a\\nb" }'),
        "corp",
        "headers",
        ["line breaks"],
        id="header-value-with-newline",
    ),
    pytest.param(
        keychain_profile("corp", 'output = "xml"'),
        "corp",
        "output",
        ["expected one of token, json", "'xml'"],
        id="bad-choice",
    ),
    pytest.param(
        keychain_profile("corp", 'min_ttl = "soon"'),
        "corp",
        "min_ttl",
        ["'soon' is not a duration"],
        id="bad-duration",
    ),
    pytest.param(
        keychain_profile("corp", "min_ttl = -5"),
        "corp",
        "min_ttl",
        ["cannot be negative"],
        id="negative-duration",
    ),
    pytest.param(
        keychain_profile("corp", 'service = ""'),
        "corp",
        "service",
        ["must not be empty"],
        id="empty-string",
    ),
    pytest.param(
        '[profiles.corp]\nsource = "command"\ncommand = "tool print-token"\n',
        "corp",
        "command",
        ["expected a non-empty array of strings"],
        id="command-as-a-string",
    ),
    pytest.param(
        '[profiles.corp]\nsource = "command"\ncommand = []\n',
        "corp",
        "command",
        ["non-empty array"],
        id="command-empty",
    ),
    pytest.param(
        '[profiles.corp]\nsource = "command"\ncommand = ["", "x"]\n',
        "corp",
        "command",
        ["the first entry (the program) must not be empty"],
        id="command-empty-program",
    ),
    pytest.param(
        '[profiles.corp]\nsource = "command"\ncommand = ["tool", 3]\n',
        "corp",
        "command",
        ["every entry must be a string"],
        id="command-non-string-entry",
    ),
    pytest.param(
        '[profiles.corp]\nsource = "command"\n',
        "corp",
        "command",
        ["missing required key", "array of strings"],
        id="command-profile-without-command",
    ),
    pytest.param(
        '[profiles.corp]\nservice = "x"\n',
        "corp",
        "source",
        ["missing required key", "command, entra, keychain, oidc"],
        id="no-source",
    ),
    pytest.param(
        "[profiles.corp]\n",
        "corp",
        "source",
        ["missing required key"],
        id="empty-profile",
    ),
    pytest.param(
        '[profiles.corp]\nsource = "vaultt"\n',
        "corp",
        "source",
        [
            "unknown source 'vaultt'",
            "known sources: aws-secrets-manager, azure-key-vault, command, entra, keychain, "
            "oidc, onepassword, vault",
        ],
        id="unknown-source",
    ),
    pytest.param(
        "[profiles.corp]\nsource = 5\n",
        "corp",
        "source",
        ["expected a string naming the source"],
        id="source-not-a-string",
    ),
    pytest.param(
        keychain_profile("corp", "parse = 'json'"),
        "corp",
        "parse",
        ["unknown key for a keychain profile"],
        id="key-of-another-source",
    ),
]


@pytest.mark.parametrize(("text", "profile", "key", "fragments"), PROFILE_ERRORS)
def test_profile_errors_name_file_profile_and_key(
    files: Files, text: str, profile: str, key: str, fragments: list[str]
) -> None:
    path = files.user(text)
    cfg = files.load()  # profile contents are checked when the profile is used
    with pytest.raises(ConfigError) as info:
        cfg.profile(profile)
    err = info.value
    assert (err.file, err.profile, err.key) == (str(path), profile, key)
    message = str(err)
    assert message.startswith(f'{path}: profile "{profile}": key "{key}": ')
    for fragment in fragments:
        assert fragment in message


FILE_ERRORS = [
    pytest.param(
        'default_profle = "a"\n',
        "default_profle",
        ["unknown top-level key", "did you mean 'default_profile'?"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        "default_profile = 3\n", "default_profile", ["expected a profile name"], id="default-int"
    ),
    pytest.param(
        'default_profile = ""\n', "default_profile", ["expected a profile name"], id="default-empty"
    ),
    pytest.param("profiles = 3\n", "profiles", ["[profiles.corp]"], id="profiles-not-a-table"),
    pytest.param("timeouts = 3\n", "timeouts", ["expected a table"], id="timeouts-not-a-table"),
    pytest.param(
        '[timeouts]\nmid_session_refresh = "20s"\n',
        "timeouts.mid_session_refresh",
        ["at most 19 s"],
        id="mid-session-over-19s",
    ),
    pytest.param(
        "[timeouts]\nmid_session_refresh = 19.5\n",
        "timeouts.mid_session_refresh",
        ["at most 19 s"],
        id="mid-session-19.5s",
    ),
    pytest.param(
        '[timeouts]\ninteractive = "11m"\n',
        "timeouts.interactive",
        ["at most 600 s"],
        id="interactive-over-600s",
    ),
    pytest.param(
        "[timeouts]\nsilent = 0\n", "timeouts.silent", ["more than 0 s"], id="silent-zero"
    ),
    pytest.param(
        '[timeouts]\nsilent = "fast"\n',
        "timeouts.silent",
        ["'fast' is not a duration"],
        id="silent-not-a-duration",
    ),
    pytest.param(
        "[timeouts]\nsilent = true\n", "timeouts.silent", ["not a boolean"], id="silent-bool"
    ),
    pytest.param("[timeouts]\nsilent = inf\n", "timeouts.silent", ["finite"], id="silent-infinite"),
    pytest.param(
        "[timeouts]\nsilnet = 5\n",
        "timeouts.silnet",
        ["unknown timeout", "did you mean 'silent'?"],
        id="unknown-timeout",
    ),
]


@pytest.mark.parametrize(("text", "key", "fragments"), FILE_ERRORS)
def test_file_level_errors_name_file_and_key(
    files: Files, text: str, key: str, fragments: list[str]
) -> None:
    path = files.user(text)
    with pytest.raises(ConfigError) as info:
        files.load()
    err = info.value
    assert (err.file, err.key) == (str(path), key)
    assert str(err).startswith(f'{path}: key "{key}": ')
    for fragment in fragments:
        assert fragment in str(err)


def test_a_profile_that_is_not_a_table_names_the_profile(files: Files) -> None:
    path = files.user("[profiles]\ncorp = 1\n")
    with pytest.raises(ConfigError) as info:
        files.load()
    assert str(info.value) == f'{path}: profile "corp": expected a table [profiles.corp]'


@pytest.mark.parametrize("seconds", ["19s", "19", 1, "500ms"])
def test_mid_session_refresh_up_to_19s_is_accepted(files: Files, seconds: object) -> None:
    value = f'"{seconds}"' if isinstance(seconds, str) else str(seconds)
    files.user(f"[timeouts]\nmid_session_refresh = {value}\n")
    assert 0 < files.load().timeout("mid_session_refresh") <= 19


def test_errors_in_the_managed_file_name_the_managed_file(files: Files) -> None:
    managed = files.managed('[profiles.corp]\nauth_scheme = "basic"\n')
    files.user(keychain_profile("corp"))
    with pytest.raises(ConfigError) as info:
        files.load().profile("corp")
    assert info.value.file == str(managed)
    assert info.value.key == "auth_scheme"
    assert str(info.value).startswith(f'{managed}: profile "corp": key "auth_scheme": ')


def test_missing_required_key_names_every_file_that_defines_the_profile(files: Files) -> None:
    managed = files.managed('[profiles.corp]\nsource = "command"\n')
    user = files.user("[profiles.corp]\nmin_ttl = 60\n")
    with pytest.raises(ConfigError) as info:
        files.load().profile("corp")
    assert info.value.key == "command"
    assert str(managed) in str(info.value)
    assert str(user) in str(info.value)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(b'[profiles.corp\nsource = "keychain"\n', "not valid TOML", id="bad-header"),
        pytest.param(b"source = \n", "not valid TOML", id="no-value"),
        pytest.param(b'a = "1"\na = "2"\n', "not valid TOML", id="duplicate-key"),
        pytest.param(b"x = " + b"[" * 100_000, "not valid TOML", id="deeply-nested"),
        pytest.param(b'default_profile = "caf\xe9"\n', "not valid UTF-8", id="latin-1"),
        pytest.param(b"\xff\xfe[\x00p\x00]\x00", "not valid UTF-8", id="utf-16"),
    ],
)
def test_unparseable_files_name_the_file(files: Files, content: bytes, fragment: str) -> None:
    files.user_path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        files.load()
    assert info.value.file == str(files.user_path)
    assert str(info.value).startswith(f"{files.user_path}: {fragment}")


def test_a_directory_instead_of_a_file_is_a_config_error(files: Files) -> None:
    files.user_path.mkdir()
    with pytest.raises(ConfigError) as info:
        files.load()
    assert str(info.value) == f"{files.user_path}: is a directory, expected a TOML file"


def test_an_unreadable_path_is_a_config_error(
    tmp_path: Path, files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Permissions do not stop root; a path through a regular file fails for everyone (ENOTDIR).
    blocker = tmp_path / "plain-file"
    blocker.write_text("")
    bad = blocker / "config.toml"
    monkeypatch.setenv("GATEKEY_CONFIG", str(bad))
    with pytest.raises(ConfigError) as info:
        files.load()
    assert str(info.value).startswith(f"{bad}: cannot read the file (")


def test_an_unreadable_managed_file_is_a_config_error(files: Files) -> None:
    files.managed_path.write_bytes(b"\xc3\x28")
    files.user(keychain_profile("a"))
    with pytest.raises(ConfigError) as info:
        files.load()
    assert info.value.file == str(files.managed_path)


def test_a_huge_integer_min_ttl_is_a_config_error(files: Files) -> None:
    files.user(keychain_profile("corp", f"min_ttl = {10**400}"))
    with pytest.raises(ConfigError) as info:
        files.load().profile("corp")
    assert info.value.key == "min_ttl"


def test_a_huge_integer_timeout_is_a_config_error(files: Files) -> None:
    files.user(f"[timeouts]\nsilent = {10**400}\n")
    with pytest.raises(ConfigError) as info:
        files.load()
    assert info.value.key == "timeouts.silent"


# --- profile selection ----------------------------------------------------------------------
@pytest.fixture
def three(files: Files) -> config.Config:
    files.user(
        'default_profile = "b"\n'
        + keychain_profile("a")
        + keychain_profile("b")
        + command_profile("c")
    )
    return files.load()


def test_explicit_profile_wins(three: config.Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEKEY_PROFILE", "c")
    assert config.select_profile(three, "a") == "a"


def test_GATEKEY_PROFILE_beats_default_profile(
    three: config.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEKEY_PROFILE", "c")
    assert config.select_profile(three) == "c"


def test_empty_GATEKEY_PROFILE_is_ignored(
    three: config.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEKEY_PROFILE", "")
    assert config.select_profile(three) == "b"


def test_default_profile_is_used(three: config.Config) -> None:
    assert config.select_profile(three) == "b"


def test_the_only_profile_is_used(files: Files) -> None:
    files.user(command_profile("solo"))
    assert config.select_profile(files.load()) == "solo"


def test_several_profiles_without_default_is_an_error_listing_them(files: Files) -> None:
    path = files.user(keychain_profile("alpha") + command_profile("beta"))
    with pytest.raises(ConfigError) as info:
        config.select_profile(files.load())
    message = str(info.value)
    assert message.startswith(f'{path}: key "default_profile": several profiles and no default')
    assert "one of: alpha, beta" in message
    assert "GATEKEY_PROFILE" in message


def test_default_profile_naming_a_missing_profile(files: Files) -> None:
    managed = files.managed('default_profile = "gone"\n')
    files.user(keychain_profile("alpha") + keychain_profile("beta"))
    with pytest.raises(ConfigError) as info:
        config.select_profile(files.load())
    err = info.value
    assert (err.file, err.key) == (str(managed), "default_profile")
    assert "'gone', which does not exist" in str(err)
    assert "the profiles are: alpha, beta" in str(err)


def test_explicit_profile_that_does_not_exist_fails_when_used(files: Files) -> None:
    path = files.user(keychain_profile("alpha") + keychain_profile("beta"))
    cfg = files.load()
    assert config.select_profile(cfg, "ghost") == "ghost"
    with pytest.raises(ConfigError) as info:
        cfg.profile("ghost")
    assert str(info.value) == (
        f'{path}: profile "ghost": no such profile; the profiles are: alpha, beta; '
        "to add it, run: gatekey profile add ghost --source KIND"
    )


def test_family_restricts_the_choice(files: Files) -> None:
    files.user(keychain_profile("key") + command_profile("cmd"))
    cfg = files.load()
    assert config.select_profile(cfg, family="keychain") == "key"
    assert config.select_profile(cfg, family="vault") == "cmd"  # `command` is a vault source
    with pytest.raises(ConfigError):
        config.select_profile(cfg)


def test_default_profile_outside_the_family_is_skipped(files: Files) -> None:
    files.user('default_profile = "key"\n' + keychain_profile("key") + command_profile("cmd"))
    cfg = files.load()
    assert config.select_profile(cfg) == "key"
    assert config.select_profile(cfg, family="vault") == "cmd"


def test_explicit_profile_outside_the_family_is_refused(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    files.user(keychain_profile("key") + command_profile("cmd"))
    cfg = files.load()
    with pytest.raises(ConfigError) as info:
        config.select_profile(cfg, "cmd", family="keychain")
    assert info.value.profile == "cmd"
    assert "gatekey-keychain serves only OS keychain profiles" in str(info.value)
    assert "gatekey -p cmd" in str(info.value)
    monkeypatch.setenv("GATEKEY_PROFILE", "key")
    with pytest.raises(ConfigError, match="gatekey-vault serves only secrets-vault profiles"):
        config.select_profile(cfg, family="vault")


def test_no_profile_of_the_family(files: Files) -> None:
    files.user(keychain_profile("key") + command_profile("cmd"))
    with pytest.raises(ConfigError) as info:
        config.select_profile(files.load(), family="idp")
    assert "no identity-provider (Entra ID, OIDC) profiles are configured" in str(info.value)
    assert "profiles: cmd, key" in str(info.value)


def test_several_profiles_of_the_family_lists_only_those(files: Files) -> None:
    files.user(keychain_profile("key") + command_profile("c1") + command_profile("c2"))
    with pytest.raises(ConfigError) as info:
        config.select_profile(files.load(), family="vault")
    assert "several secrets-vault profiles and no default" in str(info.value)
    assert str(info.value).endswith("one of: c1, c2")


def test_a_profile_with_a_broken_source_is_in_no_family(files: Files) -> None:
    files.user("[profiles.broken]\nsource = 3\n" + command_profile("cmd"))
    assert config.select_profile(files.load(), family="vault") == "cmd"


# --- durations ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("1d", 86400.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("90", 90.0),
        ("  2M ", 120.0),
        (90, 90.0),
        (0, 0.0),
        (2.5, 2.5),
        ("0", 0.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "soon",
        "h",
        "-5s",
        "1x",
        "1h-30m",
        "5 5",
        "1.5.5s",
        "1e3",
        "\u0661\u0662s",  # non-ASCII digits
        -1,
        float("nan"),
        float("inf"),
        True,
        None,
        [90],
        {"s": 90},
    ],
)
def test_bad_durations_raise_value_error(text: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is checked elsewhere
        parse_duration(text)


def test_a_duration_string_too_large_for_a_float_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        parse_duration("9" * 400 + "s")


# --- the managed file must be the admin's alone ------------------------------------------------
@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_a_managed_config_writable_by_others_is_refused(files: Files, mode: int) -> None:
    managed = files.managed(keychain_profile("corp"))
    managed.chmod(mode)
    with pytest.raises(ConfigError) as info:
        files.load()
    text = str(info.value)
    assert str(managed) in text
    assert f"mode {mode:o}" in text
    assert f"chmod 644 {managed}" in text


def test_the_real_managed_config_must_be_owned_by_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the real system file (not a stand-in), a file root does not own is refused."""
    real = tmp_path / "etc-gatekey-config.toml"
    real.write_text(keychain_profile("corp"))
    real.chmod(0o644)
    monkeypatch.setattr(paths, "managed_config_file", lambda: str(real))
    monkeypatch.delenv("GATEKEY_MANAGED_CONFIG", raising=False)
    monkeypatch.setenv("GATEKEY_CONFIG", str(tmp_path / "user.toml"))
    (tmp_path / "user.toml").write_text("")
    if os.geteuid() == 0:
        os.chown(real, 12345, -1)  # as if a user had created it
    with pytest.raises(ConfigError) as info:
        config.load()
    assert "not root" in str(info.value)
    assert f"chown root {real}" in str(info.value)


def test_a_managed_config_that_only_root_can_change_loads(files: Files) -> None:
    managed = files.managed(keychain_profile("corp"))
    managed.chmod(0o644)
    files.user("")
    assert files.load().profile_names == ["corp"]
