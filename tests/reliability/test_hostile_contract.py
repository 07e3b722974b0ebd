"""Issue 12: the contract holds under hostile input (each test named after what it protects).

Black-box: the installed executables, run as the app runs them (no arguments, stdin closed),
against files, environments, claims and credentials a hostile user or a broken source provides.
Every run here must end with exactly one valid payload on stdout or nothing, one stderr line on
failure, and within its context's documented deadline (timeouts.silent, 10 s, unless the
test's config sets another).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blackbox_env import Env, Result, exe

pytestmark = pytest.mark.blackbox

SILENT_DEADLINE = 10.0  # timeouts.silent's documented default
# How long a subprocess may take before the test calls it hung: the silent deadline plus the
# watchdog's grace and a generous margin for a busy machine. Never a measure of speed.
HUNG = SILENT_DEADLINE + 20.0


def jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def printer_profile(path: Path, extra: str = "") -> str:
    """A command profile whose command prints the bytes of ``path`` verbatim (parse = raw)."""
    code = f"import sys; sys.stdout.buffer.write(open({str(path)!r}, 'rb').read())"
    return (
        '[profiles.raw]\nsource = "command"\n'
        f"command = [{json.dumps(sys.executable)}, '-c', {json.dumps(code)}]\n"
        'parse = "raw"\nallow_insecure_cache = true\ncache_ttl = "1h"\n' + extra
    )


def assert_ok(r: Result, stdout: bytes) -> None:
    assert r.code == 0, r.err
    assert r.stdout == stdout
    assert "Traceback" not in r.err


# --- 1. a claim never becomes a header line; header names are HTTP tokens -----------------------
@pytest.mark.parametrize(
    "evil",
    ["alice\nAuthorization: Bearer x", "alice\r\nX-Evil: 1", "al\x00ice", "al\x1bice", "a\u2028b"],
    ids=["LF", "CRLF", "NUL", "ESC", "U+2028"],
)
@pytest.mark.parametrize("how", ["json-output", "get-env", "get-json"])
def test_a_claim_with_control_characters_never_becomes_a_header_line(
    gk: Env, evil: str, how: str
) -> None:
    token = jwt({"sub": evil, "email": "a@example.test"})
    output = "json" if how == "json-output" else "token"
    gk.write_config(
        gk.counting_profile(
            extra=f'output = "{output}"\nheaders = {{ "X-User" = "{{claims.sub}}" }}'
        )
    )
    args = {
        "json-output": (),
        "get-env": ("get", "--format", "env"),
        "get-json": ("get", "--format", "json"),
    }[how]
    r = gk.run(*args, context="background", TOKEN=token)
    r.assert_clean_failure(1)
    assert r.err.count("\n") == 1
    assert 'profile "cmd"' in r.err
    assert '"X-User"' in r.err
    assert "sub" in r.err
    for fragment in ("Authorization", "X-Evil", "alice", "al\\x", "a\\u2028"):
        assert fragment not in r.err.replace('profile "cmd"', "").replace("claim", "")


def test_a_clean_claim_still_fills_its_header(gk: Env) -> None:
    token = jwt({"sub": "alice"})
    gk.write_config(
        gk.counting_profile(extra='output = "json"\nheaders = { "X-User" = "{claims.sub}" }')
    )
    r = gk.run(context="background", TOKEN=token)
    assert_ok(r, json.dumps({"token": token, "headers": {"X-User": "alice"}}).encode() + b"\n")


@pytest.mark.parametrize(
    "name",
    ['"Bad Name:"', '""', '"X-Ünicode"', '"a b"', '"' + "N" * 300 + '"', '"X\\u0000Y"'],
    ids=["colon-space", "empty", "non-ascii", "space", "too-long", "nul"],
)
def test_header_names_in_the_config_must_be_http_tokens(gk: Env, name: str) -> None:
    gk.write_config(gk.counting_profile(extra=f'output = "json"\nheaders = {{ {name} = "v" }}'))
    r = gk.run(context="background")
    r.assert_clean_failure(78)
    assert 'profile "cmd"' in r.err
    assert 'key "headers"' in r.err
    assert len(r.err) < 500  # the name is cut when quoted, never echoed whole
    assert gk.count() == 0  # refused before the source is asked


def test_a_five_megabyte_header_name_is_refused_quickly(gk: Env) -> None:
    gk.write_config(
        gk.counting_profile(extra='output = "json"\nheaders = { "' + "N" * (5 << 20) + '" = "v" }'),
    )
    r = gk.run(context="background", timeout=HUNG)
    r.assert_clean_failure(78)
    assert len(r.err) < 500


# --- 2. special files never hang a run ---------------------------------------------------------
@pytest.fixture
def fifo_at() -> Iterator[list[Path]]:
    """Make FIFOs; removed before the suite's hygiene scan (which reads cache files)."""
    made: list[Path] = []
    yield made
    for path in made:
        path.unlink(missing_ok=True)


def mkfifo(made: list[Path], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    os.mkfifo(path, 0o600)
    made.append(path)
    return path


@pytest.mark.parametrize("args", [(), ("config", "validate"), ("status",), ("config", "show")])
def test_a_fifo_as_the_user_config_is_a_config_error_not_a_hang(
    gk: Env, fifo_at: list[Path], args: tuple[str, ...]
) -> None:
    gk.vars["GATEKEY_CONFIG"] = str(mkfifo(fifo_at, gk.root / "config.toml"))
    r = gk.run(*args, context="background", timeout=HUNG)
    r.assert_clean_failure(78)
    assert "named pipe" in r.err
    assert "config.toml" in r.err


def test_a_fifo_as_the_managed_config_is_a_config_error_not_a_hang(
    gk: Env, fifo_at: list[Path]
) -> None:
    gk.write_config(gk.counting_profile())
    gk.vars["GATEKEY_MANAGED_CONFIG"] = str(mkfifo(fifo_at, gk.root / "managed.toml"))
    r = gk.run(context="scheduled-task", timeout=HUNG)
    r.assert_clean_failure(78)
    assert "managed.toml" in r.err


@pytest.mark.parametrize("where", ["index", "token-entry", "failure-record", "lock"])
def test_a_fifo_in_the_cache_is_a_miss_not_a_hang(gk: Env, fifo_at: list[Path], where: str) -> None:
    gk.write_config(gk.counting_profile())
    assert_ok(gk.run(context="background"), b"tok-1\n")  # cached, and the index written
    entry = gk.entry_path()
    target = {
        "index": gk.cache_dir / "index.json",
        "token-entry": entry,
        "failure-record": gk.cache_dir / "failures" / entry.name,
        "lock": gk.cache_dir / "locks" / (entry.stem + ".lock"),
    }[where]
    mkfifo(fifo_at, target)
    if where in ("failure-record", "lock"):  # read only on the way to the source: go there
        gk.edit_entry(expires_at=time.time() + 600)
    for context in ("background", "mid-session-refresh", "interactive"):
        r = gk.run(context=context, timeout=HUNG)
        assert r.code == 0, r.err
        assert r.stdout in (b"tok-1\n", b"tok-2\n", b"tok-3\n", b"tok-4\n")
        assert "Traceback" not in r.err
        assert r.elapsed < SILENT_DEADLINE if context != "interactive" else True


# --- 3. the run log never breaks stdout nor hangs ----------------------------------------------
@pytest.mark.parametrize("log", ["fifo", "/dev/stdout", "/proc/self/fd/1", "/dev/full", "dir"])
def test_the_run_log_never_writes_to_stdout_nor_blocks(
    gk: Env, fifo_at: list[Path], log: str
) -> None:
    if log == "fifo":
        path = str(mkfifo(fifo_at, gk.root / "runs.fifo"))
    elif log == "dir":
        path = str(gk.root)
    else:
        path = log
    gk.write_config(f'log_file = "{path}"\n' + gk.counting_profile())
    for expected in (b"tok-1\n", b"tok-1\n", b"tok-1\n"):  # a miss, then cache hits
        assert_ok(gk.run(context="background", timeout=HUNG), expected)
    assert_ok(gk.run("get", timeout=HUNG), b"tok-1\n")
    r = gk.run(context="background", timeout=HUNG, FAIL="3", GATEKEY_NO_FASTPATH="1")
    assert r.code == 0
    assert r.stdout == b"tok-1\n"


def test_the_run_log_never_lands_in_the_file_stdout_is_redirected_to(gk: Env) -> None:
    out = gk.root / "stdout.txt"
    gk.write_config(f'log_file = "{out}"\n' + gk.counting_profile())
    for _ in range(3):  # a miss, then cache hits, each with stdout redirected to the log file
        with open(out, "wb") as f:
            proc = subprocess.run(
                [exe()],
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.PIPE,
                env=dict(gk.vars, CLAUDE_HELPER_CONTEXT="background"),
                timeout=HUNG,
            )
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes() == b"tok-1\n"


def test_a_relative_log_file_is_a_config_error(gk: Env) -> None:
    gk.write_config('log_file = "runs.jsonl"\n' + gk.counting_profile())
    r = gk.run(context="background")
    r.assert_clean_failure(78)
    assert 'key "log_file"' in r.err
    assert "relative" in r.err
    assert not (gk.root / "runs.jsonl").exists()


# --- 7. a credential that is not valid header text is never printed ----------------------------
CREDENTIALS = {
    "invalid-utf8": b"sk-abc\xff\xfedef",
    "bom": b"\xef\xbb\xbfsk-abcdef",
    "zero-width": "sk-abc\u200bdef".encode(),
    "bidi": "sk-abc\u202edef".encode(),
    "accented": "sk-café".encode(),
    "nbsp": "sk-abc\u00a0def".encode(),
    "two-mib": b"k" * (2 << 20),
    "one-over": b"k" * 16385,
}


@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
def test_a_credential_that_is_not_printable_ascii_is_refused_never_cut(gk: Env, kind: str) -> None:
    source = gk.root / "answer.bin"
    source.write_bytes(CREDENTIALS[kind])
    gk.write_config(printer_profile(source))
    for args in ((), ("get",), ("get", "--format", "json")):
        r = gk.run(*args, context="background", timeout=HUNG)
        r.assert_clean_failure(1)
        assert "cannot be sent in an HTTP header" in r.err


def test_the_longest_credential_allowed_is_printed_byte_exact(gk: Env) -> None:
    value = (b"AZaz09-._~+/=" * 2000)[:16384]
    source = gk.root / "answer.bin"
    source.write_bytes(value)
    gk.write_config(printer_profile(source))
    assert_ok(gk.run(context="background"), value + b"\n")
    assert_ok(gk.run(context="background"), value + b"\n")  # the cache hit too


def test_a_cached_credential_that_is_not_printable_ascii_is_a_miss(gk: Env) -> None:
    gk.write_config(gk.counting_profile())
    assert_ok(gk.run(context="background"), b"tok-1\n")
    gk.edit_entry(token="tok-\u200b1")  # type: ignore[arg-type]
    assert_ok(gk.run(context="background"), b"tok-2\n")


# --- 8. closed or broken stdout -----------------------------------------------------------------
def run_with_stdout(gk: Env, stdout: int | str, *args: str, **env: str) -> tuple[int, bytes]:
    """Run gatekey with fd 1 closed ("closed"), a pipe nobody reads ("broken") or a file."""
    full_env = dict(gk.vars, CLAUDE_HELPER_CONTEXT="background", **env)
    if stdout == "closed":
        argv = ["/bin/sh", "-c", 'exec "$@" >&-', "sh", exe(), *args]
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=full_env, timeout=HUNG
        )
        return proc.returncode, proc.stderr
    if stdout == "broken":
        read, write = os.pipe()
        os.close(read)
        try:
            proc = subprocess.run(
                [exe(), *args],
                stdin=subprocess.DEVNULL,
                stdout=write,
                stderr=subprocess.PIPE,
                env=full_env,
                timeout=HUNG,
            )
        finally:
            os.close(write)
        return proc.returncode, proc.stderr
    with open(str(stdout), "wb") as f:
        proc = subprocess.run(
            [exe(), *args],
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.PIPE,
            env=full_env,
            timeout=HUNG,
        )
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("stdout", ["closed", "broken", "/dev/full"])
@pytest.mark.parametrize("path", ["cache-hit", "miss"])
def test_a_payload_that_cannot_be_delivered_is_a_failure_with_one_line(
    gk: Env, stdout: str, path: str
) -> None:
    gk.write_config(gk.counting_profile())
    if path == "cache-hit":
        assert_ok(gk.run(context="background"), b"tok-1\n")
    code, err = run_with_stdout(gk, stdout)
    text = err.decode()
    assert code == 74, text
    assert text.startswith("gatekey: "), text
    assert text.count("\n") == 1, text
    assert "Traceback" not in text
    assert "bug in gatekey" not in text
    assert "stdout" in text


@pytest.mark.parametrize(
    "args",
    [("status",), ("config", "show"), ("config", "path"), ("version",), ("status", "--json")],
)
def test_a_person_piping_a_command_to_head_sees_no_error(gk: Env, args: tuple[str, ...]) -> None:
    gk.write_config(gk.counting_profile())
    code, err = run_with_stdout(gk, "broken", *args)
    assert (code, err) == (0, b"")


def test_a_full_disk_under_a_human_command_is_one_line(gk: Env) -> None:
    gk.write_config(gk.counting_profile())
    code, err = run_with_stdout(gk, "/dev/full", "status")
    text = err.decode()
    assert code == 74, text
    assert text.count("\n") == 1
    assert "Traceback" not in text
    assert "bug in gatekey" not in text


# --- 9. no home directory: never a path relative to the working directory -----------------------
NOBODY_UID = 45678  # no entry in the password database


def test_no_home_and_no_passwd_entry_never_reads_the_working_directory(tmp_path: Path) -> None:
    """A container running an arbitrary uid: no HOME, and no password-database entry. A user
    namespace gives the run such a uid (while it can still read the interpreter under /root)."""
    import pwd

    with pytest.raises(KeyError):
        pwd.getpwuid(NOBODY_UID)
    as_nobody = ["unshare", "--user", f"--map-user={NOBODY_UID}", f"--map-group={NOBODY_UID}"]
    marker = tmp_path / "planted-command-ran"
    planted = tmp_path / "~" / ".config" / "gatekey"
    planted.mkdir(parents=True)
    (planted / "config.toml").write_text(
        '[profiles.planted]\nsource = "command"\n'
        f'command = ["/bin/sh", "-c", "touch {marker}; echo planted-token"]\nparse = "raw"\n'
    )
    env = {"PATH": os.environ["PATH"], "CLAUDE_HELPER_CONTEXT": "background", "LANG": "C.UTF-8"}
    probe = subprocess.run([*as_nobody, "id", "-u"], capture_output=True, env=env, check=True)
    assert probe.stdout == f"{NOBODY_UID}\n".encode()
    for args in ((), ("get",), ("status",), ("config", "validate")):
        proc = subprocess.run(
            [*as_nobody, exe(), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=env,
            cwd=tmp_path,
            timeout=HUNG,
        )
        err = proc.stderr.decode()
        assert proc.returncode == 78, err
        assert proc.stdout == b""
        assert "HOME" in err
        assert err.count("\n") == 1
    assert not marker.exists()
    assert sorted(p.name for p in (tmp_path / "~").iterdir()) == [".config"]  # no ./~/.cache


@pytest.mark.parametrize("var", ["GATEKEY_CONFIG", "GATEKEY_CACHE_DIR"])
def test_a_relative_location_variable_is_a_config_error_or_no_cache(gk: Env, var: str) -> None:
    gk.write_config(gk.counting_profile())
    (gk.root / "rel").mkdir()
    if var == "GATEKEY_CONFIG":
        r = gk.run(context="background", GATEKEY_CONFIG="config.toml")
        r.assert_clean_failure(78)
        assert "relative" in r.err
    else:
        r = gk.run(context="background", GATEKEY_CACHE_DIR="rel")
        assert_ok(r, b"tok-1\n")
        assert "relative" in r.err  # one warning: no cache, never one under the cwd
        assert list((gk.root / "rel").iterdir()) == []


# --- 10. a tampered index is never served --------------------------------------------------------
TAMPERING = {
    "output-header": {"output": "header"},
    "output-env": {"output": "env"},
    "crlf-header": {"output": "json", "headers": {"X-A": "v\r\nAuthorization: Bearer x"}},
    "bad-header-name": {"output": "json", "headers": {"Bad Name:": "v"}},
    "log-to-stdout": {"log_file": "/dev/stdout"},
    "relative-log": {"log_file": "runs.jsonl"},
    "scheme": {"auth_scheme": "basic"},
    "huge-timeout": {"timeouts": {"silent": 1e9}},
    "key-path": {"key": "../../index"},
}


@pytest.mark.parametrize("change", sorted(TAMPERING))
def test_a_tampered_cache_index_is_never_served(gk: Env, change: str) -> None:
    gk.write_config(gk.counting_profile())
    assert_ok(gk.run(context="background"), b"tok-1\n")
    index_path = gk.cache_dir / "index.json"
    index = json.loads(index_path.read_text())
    (selection,) = index
    index[selection].update(TAMPERING[change])
    index_path.write_text(json.dumps(index))
    r = gk.run(context="background")
    assert_ok(r, b"tok-1\n")  # what the config says, from the full path
    assert gk.count() == 1


# --- gaps ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_stopping_gatekey_stops_the_command_and_its_children(gk: Env, sig: int) -> None:
    pids = gk.root / "pids"
    script = f"sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    gk.write_config(
        '[profiles.cmd]\nsource = "command"\n'
        f'command = ["/bin/sh", "-c", {json.dumps(script)}]\nparse = "raw"\n'
        '[timeouts]\ninteractive = "600s"\n'
    )
    proc = subprocess.Popen(
        [exe()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(gk.vars, CLAUDE_HELPER_CONTEXT="interactive"),
    )
    try:
        deadline = time.monotonic() + HUNG
        while not (pids.exists() and len(pids.read_text().split()) == 2):
            assert time.monotonic() < deadline, "the command never started"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        children = [int(p) for p in pids.read_text().split()]
        proc.send_signal(sig)
        proc.communicate(timeout=HUNG)
        assert proc.returncode == -sig
        deadline = time.monotonic() + HUNG
        while any(alive(pid) for pid in children):
            assert time.monotonic() < deadline, f"orphaned: {[p for p in children if alive(p)]}"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for pid in [int(p) for p in pids.read_text().split()] if pids.exists() else []:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"  # a zombie is gone but not yet reaped
    except OSError:
        return False


def test_cache_key_env_gives_each_value_its_own_cache_entry(gk: Env) -> None:
    gk.write_config(gk.counting_profile(extra='cache_key_env = ["AWS_PROFILE"]'))
    assert_ok(gk.run(context="background", AWS_PROFILE="alice", TOKEN="alice-tok"), b"alice-tok\n")
    assert_ok(gk.run(context="background", AWS_PROFILE="bob", TOKEN="bob-tok"), b"bob-tok\n")
    assert_ok(gk.run(context="background", TOKEN="nobody-tok"), b"nobody-tok\n")  # unset
    assert gk.count() == 3
    for who in ("alice", "bob"):  # each served from its own entry (the cache hit included)
        assert_ok(gk.run(context="background", AWS_PROFILE=who, TOKEN="x"), f"{who}-tok\n".encode())
    assert gk.count() == 3


@pytest.mark.parametrize("value", ['["AWS PROFILE"]', '"AWS_PROFILE"', "[1]", '["1X"]'])
def test_cache_key_env_must_name_variables(gk: Env, value: str) -> None:
    gk.write_config(gk.counting_profile(extra=f"cache_key_env = {value}"))
    r = gk.run(context="background")
    r.assert_clean_failure(78)
    assert 'key "cache_key_env"' in r.err


def test_a_config_starting_with_a_bom_says_bom(gk: Env) -> None:
    gk.config_path.write_bytes(b"\xef\xbb\xbf" + gk.counting_profile().encode())
    gk.vars["GATEKEY_CONFIG"] = str(gk.config_path)
    r = gk.run(context="background")
    r.assert_clean_failure(78)
    assert "byte-order mark" in r.err
    assert "config.toml" in r.err


def test_a_fifo_as_the_vault_token_file_is_no_token_not_a_hang(
    gk: Env, fifo_at: list[Path]
) -> None:
    mkfifo(fifo_at, Path(gk.vars["HOME"]) / ".vault-token")
    gk.write_config(
        '[profiles.v]\nsource = "vault"\naddress = "https://127.0.0.1:9"\npath = "gw"\n'
    )
    r = gk.run(context="background", timeout=HUNG)
    r.assert_clean_failure(4)
    assert "no Vault token" in r.err
    assert r.elapsed < SILENT_DEADLINE
