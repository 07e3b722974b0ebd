"""The vault-ish test peers themselves: moto's Secrets Manager behind the counting proxy
(support/moto_peer.py) and the stand-in for 1Password's `op` (support/fake_op).

No gatekey here: boto3 and plain subprocesses against the peers, to show that they work and to
pin down what they answer. Read these with the docstring of moto_peer.py and the header of
fake_op.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from blackbox_env import SUPPORT
from moto_peer import MotoServer, moto_server
from peers import alive

FAKE_OP = SUPPORT / "fake_op"
ERROR_LINE = re.compile(r"^\[ERROR\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d (.*)\n$")


# --- moto -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def moto(moto_module: MotoServer) -> MotoServer:
    moto_module.reset()
    return moto_module


@functools.cache
def _session() -> Any:
    import boto3

    return boto3.session.Session()  # one: a client per session costs ~70 ms, then ~3 ms


def client_from(env: dict[str, str]) -> Any:
    """A boto3 client configured only from ``env`` (what a subprocess would get)."""
    from botocore.config import Config

    return _session().client(
        "secretsmanager",
        endpoint_url=env["AWS_ENDPOINT_URL_SECRETS_MANAGER"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, proxies={}),
    )


def error_of(call: Callable[[], object]) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as info:
        call()
    response: dict[str, Any] = info.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"].get("Message", ""),
    )


def test_a_subprocess_reaches_moto_from_env_alone(moto: MotoServer, tmp_path: Path) -> None:
    moto.create_secret("app/token", "tok-1")
    moto.create_secret("app/json", {"token": "tok-2", "expires_in": 3600})
    # A HOME whose ~/.aws would point elsewhere: env() must win over it.
    aws = tmp_path / "home" / ".aws"
    aws.mkdir(parents=True)
    (aws / "credentials").write_text("[default]\naws_access_key_id = AKIAHOMEKEY\n")
    (aws / "config").write_text("[default]\nregion = eu-west-1\n")
    env = dict(PATH=os.environ["PATH"], HOME=str(tmp_path / "home"), **moto.env())
    assert env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] == moto.endpoint
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", moto.endpoint)
    assert Path(env["AWS_CONFIG_FILE"]).is_relative_to(moto.workdir)
    assert Path(env["AWS_SHARED_CREDENTIALS_FILE"]).is_relative_to(moto.workdir)
    code = (
        "import boto3, json\n"
        "c = boto3.client('secretsmanager')\n"
        "print(json.dumps([c.get_secret_value(SecretId=s)['SecretString']"
        " for s in ('app/token', 'app/json')]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    token, blob = json.loads(out.stdout)
    assert token == "tok-1"
    assert json.loads(blob) == {"token": "tok-2", "expires_in": 3600}
    assert [s.access_key_id for s in moto.seen] == [env["AWS_ACCESS_KEY_ID"]] * 2
    assert moto.get_secret_value_calls() == 2


def test_put_value_moves_awscurrent(moto: MotoServer) -> None:
    moto.create_secret("rot", "old")
    first = next(iter(moto.stages("rot")))
    new = moto.put_value("rot", "new")
    assert moto.stages("rot") == {first: ["AWSPREVIOUS"], new: ["AWSCURRENT"]}
    sm = client_from(moto.env())
    assert sm.get_secret_value(SecretId="rot")["SecretString"] == "new"
    assert sm.get_secret_value(SecretId="rot", VersionStage="AWSPREVIOUS")["SecretString"] == "old"
    pending = moto.put_value("rot", "next", stages=["AWSPENDING"])
    assert moto.stages("rot")[pending] == ["AWSPENDING"]
    assert sm.get_secret_value(SecretId="rot")["SecretString"] == "new"


def test_binary_and_deleted_secrets(moto: MotoServer) -> None:
    moto.create_secret("bin", b"\x00\x01")
    moto.create_secret("gone", "x")
    moto.create_secret("doomed", "y")
    sm = client_from(moto.env())
    assert sm.get_secret_value(SecretId="bin")["SecretBinary"] == b"\x00\x01"
    moto.delete_secret("gone")
    # moto answers 404 here; AWS documents HTTP 400 for ResourceNotFoundException. Go by code.
    assert error_of(lambda: sm.get_secret_value(SecretId="gone"))[:2] == (
        "ResourceNotFoundException",
        404,
    )
    moto.delete_secret("doomed", force=False)  # scheduled for deletion, still there
    assert error_of(lambda: sm.get_secret_value(SecretId="doomed"))[:2] == (
        "InvalidRequestException",
        400,
    )


def test_reset_forgets_secrets_counts_and_enforcement(moto: MotoServer) -> None:
    moto.create_secret("s", "v")
    moto.user_without_access()
    sm = client_from(moto.env())
    sm.get_secret_value(SecretId="s")
    assert moto.enforcing
    assert moto.get_secret_value_calls() == 1
    moto.reset()
    assert not moto.enforcing
    assert moto.seen == []
    sm = client_from(moto.env())
    assert error_of(lambda: sm.get_secret_value(SecretId="s"))[0] == "ResourceNotFoundException"


def test_access_denied_is_real_and_shaped_like_aws(moto: MotoServer) -> None:
    moto.create_secret("s", "v")
    allowed = moto.env()
    denied = moto.user_without_access()
    assert denied["AWS_ACCESS_KEY_ID"] != allowed["AWS_ACCESS_KEY_ID"]
    code, status, message = error_of(lambda: client_from(denied).get_secret_value(SecretId="s"))
    assert (code, status) == ("AccessDeniedException", 400)
    assert "is not authorized to perform: secretsmanager:GetSecretValue" in message
    # The admin key in env() keeps working while the server enforces IAM.
    assert client_from(allowed).get_secret_value(SecretId="s")["SecretString"] == "v"
    # A key moto does not know, and a wrong secret key: refused too (signatures are checked).
    unknown = dict(allowed, AWS_ACCESS_KEY_ID="AKIAUNKNOWNKEY000000")
    assert error_of(lambda: client_from(unknown).get_secret_value(SecretId="s"))[:2] == (
        "UnrecognizedClientException",
        400,
    )
    badsig = dict(allowed, AWS_SECRET_ACCESS_KEY="wrong")
    assert error_of(lambda: client_from(badsig).get_secret_value(SecretId="s"))[:2] == (
        "InvalidSignatureException",
        400,
    )
    # Why the proxy rewrites: moto's own answer is IAM's XML with HTTP 403, which botocore
    # turns into the meaningless code "403" for a JSON-protocol service.
    raw = dict(denied, AWS_ENDPOINT_URL_SECRETS_MANAGER=moto.moto_endpoint)
    code, status, message = error_of(lambda: client_from(raw).get_secret_value(SecretId="s"))
    assert (code, status) == ("403", 403)
    assert "<Code>AccessDenied</Code>" in message
    assert [(s.error_code, s.status) for s in moto.seen] == [
        ("AccessDeniedException", 400),
        (None, 200),
        ("UnrecognizedClientException", 400),
        ("InvalidSignatureException", 400),
    ]


def test_counts_are_what_reached_the_server(moto: MotoServer) -> None:
    moto.create_secret("a", "1")
    moto.create_secret("b", "2")
    moto.put_value("a", "1b")
    moto.stages("a")  # admin calls go straight to moto: never counted
    sm = client_from(moto.env())
    for _ in range(3):
        sm.get_secret_value(SecretId="a")
    sm.get_secret_value(SecretId="b")
    sm.describe_secret(SecretId="a")
    assert moto.get_secret_value_calls() == 4
    assert moto.get_secret_value_calls("a") == 3
    assert moto.calls("DescribeSecret") == 1
    # Injected 5xx: a retrying client is seen retrying.
    moto.inject(status=503, times=2)
    from botocore.config import Config

    env = moto.env()
    retrying = _session().client(
        "secretsmanager",
        endpoint_url=moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"total_max_attempts": 3, "mode": "standard"}, proxies={}),
    )
    assert retrying.get_secret_value(SecretId="b")["SecretString"] == "2"
    assert moto.get_secret_value_calls("b") == 4
    assert [s.injected for s in moto.seen if s.secret_id == "b"] == [False, True, True, False]
    moto.inject(status=500)
    assert error_of(lambda: sm.get_secret_value(SecretId="b"))[:2] == (
        "InternalServiceError",
        500,
    )
    moto.inject(delay=0.3)
    t0 = time.monotonic()
    sm.get_secret_value(SecretId="b")
    assert time.monotonic() - t0 >= 0.3


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        if s.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as any server binds
        s.bind(("127.0.0.1", port))
    return True


def test_stop_frees_both_ports_and_ends_the_process(tmp_path: Path) -> None:
    with moto_server(tmp_path) as server:
        assert server.startup_s < 15
        server.create_secret("s", "v")
        client_from(server.env()).get_secret_value(SecretId="s")  # leaves a kept-alive conn
        ports = (server.port, server.moto_port)
        proc = server.proc
    assert proc is not None
    assert proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
    assert all(_port_is_free(p) for p in ports)
    server.stop()  # idempotent


# --- fake_op ----------------------------------------------------------------------------------
@dataclass
class Op:
    """An ``op`` on PATH (a link to support/fake_op) with its data and log in tmp_path."""

    bin: Path
    data: Path
    log: Path
    env: dict[str, str]

    def run(
        self, *args: str, stdin: int | None = subprocess.DEVNULL, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["op", *args],
            env=dict(self.env, **extra),
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=20,
            start_new_session=True,  # no controlling terminal, as gatekey should run it
        )

    def spawn(self, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["op", *args],
            env=dict(self.env, **extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        entries = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [e for e in entries if kind is None or e["event"] == kind]

    def wait_for(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(kind)
            if found:
                return found[-1]
            time.sleep(0.02)
        raise TimeoutError(f"no {kind!r} event in {self.log}")


SECRET = "s3cr3t-V4lue"


@pytest.fixture
def op(tmp_path: Path) -> Op:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "op").symlink_to(FAKE_OP)
    data = tmp_path / "op-data.json"
    data.write_text(
        json.dumps({"Private/api/credential": SECRET, "Private/db/conn/password": "pw"})
    )
    log = tmp_path / "op-log.jsonl"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "FAKE_OP_PYTHON": sys.executable,
        "FAKE_OP_DATA": str(data),
        "FAKE_OP_LOG": str(log),
    }
    return Op(bin_dir, data, log, env)


def assert_op_error(result: subprocess.CompletedProcess[str]) -> str:
    """An op-style failure: exit 1, nothing on stdout, one ``[ERROR] <time> ...`` line."""
    assert result.returncode == 1, result
    assert result.stdout == ""
    m = ERROR_LINE.match(result.stderr)
    assert m, result.stderr
    return m.group(1)


def test_op_read_prints_the_value(op: Op) -> None:
    assert op.run("read", "op://Private/api/credential").stdout == SECRET + "\n"
    assert op.run("read", "--no-newline", "op://Private/api/credential").stdout == SECRET
    assert op.run("read", "-n", "op://Private/db/conn/password").stdout == "pw"
    result = op.run("--account", "my", "read", "--force", "-n", "op://Private/api/credential")
    assert (result.returncode, result.stdout, result.stderr) == (0, SECRET, "")
    assert op.run("--version").stdout.strip() == "2.30.3"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (
            "op://Private/nope/credential",
            "could not read secret 'op://Private/nope/credential': could not get item "
            'Private/nope: "nope" isn\'t an item in the "Private" vault. '
            "Specify the item with its UUID, name, or domain.",
        ),
        (
            "op://Private/api/nope",
            "could not read secret 'op://Private/api/nope': item 'Private/api' does not have "
            "a field 'nope'",
        ),
        (
            "op://Work/api/credential",
            "could not read secret 'op://Work/api/credential': \"Work\" isn't a vault in this "
            "account",
        ),
        ("op://Private/api", "too few '/'"),
        ("op://a/b/c/d/e", "too many '/'"),
        ("Private/api/credential", "invalid secret reference"),
        ("op://Private//credential", "invalid secret reference"),
    ],
)
def test_op_read_failures_look_like_op(op: Op, ref: str, expected: str) -> None:
    message = assert_op_error(op.run("read", ref))
    assert expected in message


def test_op_usage_errors(op: Op) -> None:
    assert assert_op_error(op.run("read")) == "accepts 1 arg(s), received 0"
    assert "unknown flag: --bogus" in assert_op_error(op.run("read", "--bogus", "op://a/b/c"))
    assert 'unknown command "item"' in assert_op_error(op.run("item", "get", "x"))


def test_op_signed_out(op: Op) -> None:
    message = assert_op_error(op.run("read", "op://Private/api/credential", FAKE_OP_SIGNED_OUT="1"))
    assert "You are not currently signed in. Please run `op signin --help`" in message


def test_op_noisy_puts_the_value_on_stderr_once(op: Op) -> None:
    result = op.run("read", "-n", "op://Private/api/credential", FAKE_OP_NOISY="1")
    assert (result.returncode, result.stdout) == (0, SECRET)
    assert result.stderr.count(SECRET) == 1
    assert len(result.stderr.splitlines()) == 3


def test_op_log_has_argv_and_never_the_value(op: Op) -> None:
    op.run("read", "op://Private/api/credential", OP_SERVICE_ACCOUNT_TOKEN="ops_x")
    op.run("read", "op://Private/nope/x", FAKE_OP_NOISY="1")
    invoked = op.events("invoked")
    assert [e["argv"] for e in invoked] == [
        ["read", "op://Private/api/credential"],
        ["read", "op://Private/nope/x"],
    ]
    assert invoked[0]["op_env"] == ["OP_SERVICE_ACCOUNT_TOKEN"]
    assert SECRET not in op.log.read_text()
    assert "ops_x" not in op.log.read_text()


def test_op_settings_file_survives_a_scrubbed_environment(op: Op) -> None:
    settings = {k: v for k, v in op.env.items() if k.startswith("FAKE_OP_")}
    (op.bin / "fake_op.env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    result = subprocess.run(
        [str(op.bin / "op"), "read", "op://Private/api/credential"],
        env={},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert (result.returncode, result.stdout) == (0, SECRET + "\n"), result.stderr
    # Without either, it says what is missing (a test-setup error, not an op error).
    (op.bin / "fake_op.env").unlink()
    result = subprocess.run(
        [str(op.bin / "op"), "read", "op://Private/api/credential"],
        env={},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("fake_op: set FAKE_OP_PYTHON")


def test_op_delay_then_answers(op: Op) -> None:
    t0 = time.monotonic()
    result = op.run("read", "-n", "op://Private/api/credential", FAKE_OP_DELAY="0.4")
    assert time.monotonic() - t0 >= 0.4
    assert result.stdout == SECRET


def test_op_hang_holds_the_pipes_until_the_group_dies(op: Op) -> None:
    proc = op.spawn(
        "read", "op://Private/api/credential", FAKE_OP_HANG="1", FAKE_OP_HANG_SECONDS="30"
    )
    event = op.wait_for("hang")
    # Killing only op itself is not enough: its child still holds stdout and stderr open.
    proc.kill()
    with pytest.raises(subprocess.TimeoutExpired):
        proc.communicate(timeout=0.5)
    assert alive(event["child_pid"])
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=5)
    assert out == b""
    deadline = time.monotonic() + 5
    while alive(event["child_pid"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(event["child_pid"])


def test_op_stubborn_hang_needs_sigkill(op: Op) -> None:
    proc = op.spawn("read", "op://Private/api/credential", FAKE_OP_HANG="stubborn")
    op.wait_for("hang")  # logged once op and its child both ignore SIGTERM
    os.killpg(proc.pid, signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.communicate(timeout=0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=5)
    assert proc.returncode == -signal.SIGKILL


def test_op_prompt_fails_at_once_with_stdin_closed(op: Op) -> None:
    result = op.run("read", "op://Private/api/credential", FAKE_OP_PROMPT="1")
    assert "authorization prompt dismissed, please try again" in assert_op_error(result)
    assert op.wait_for("prompt") | {"pid": 0} == {
        "event": "prompt",
        "pid": 0,
        "tty": "unavailable",
        "stdin": "eof",
    }


def test_op_prompt_blocks_while_stdin_stays_open(op: Op) -> None:
    proc = subprocess.Popen(
        ["op", "read", "op://Private/api/credential"],
        env=dict(op.env, FAKE_OP_PROMPT="1"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        op.wait_for("invoked")
        time.sleep(0.3)
        assert proc.poll() is None  # waiting for an answer nobody will give
        assert op.events("prompt") == []
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # EOF: the "prompt" gives up
    assert proc.wait(timeout=10) == 1
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert proc.stdout.read() == b""
    assert b"authorization prompt dismissed" in proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
