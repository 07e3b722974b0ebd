"""A real AWS Secrets Manager for the tests: moto's server (``python -m moto.server``, moto 5.x)
on 127.0.0.1, behind a small counting proxy that runs in the test process.

What a test gets (each line is exercised by tests/peers/test_peers_vaultish.py):

- ``MotoServer(workdir)`` / ``moto_server(tmp_path)``: moto in its own process group, started
  with this interpreter and ``-p 0`` (werkzeug prints the port it bound, so there is no
  pick-a-free-port race); ready when ``GET /moto-api/`` answers (~0.3-0.5 s). ``stop()`` kills
  the group and waits, and closes the proxy: both ports are free afterwards.
- ``.endpoint`` is the PROXY (``http://127.0.0.1:<port>``): point the code under test there,
  through ``.env()``: ``AWS_ENDPOINT_URL_SECRETS_MANAGER``, an access key, ``AWS_DEFAULT_REGION``
  and ``AWS_CONFIG_FILE`` / ``AWS_SHARED_CREDENTIALS_FILE`` in ``workdir/aws`` (never ~/.aws),
  ``AWS_EC2_METADATA_DISABLED``, ``NO_PROXY``. Merge it into an isolated environment (an inherited
  ``AWS_PROFILE`` or ``AWS_SESSION_TOKEN`` would still be seen by botocore). Call ``env()``
  after ``reset()``: it holds keys of an IAM user that a reset deletes.
- Admin helpers (``create_secret``, ``put_value``, ``delete_secret``, ``stages``, ``admin()``)
  talk to moto directly, not through the proxy, so they never show up in the counts.
- Counting: the proxy records every request it relays (``seen``), so
  ``get_secret_value_calls()`` is the number of GetSecretValue requests that reached the
  server, retries included. ``reset()`` clears it. ``arrivals()`` counts requests as they
  arrive, also those still held by an injected delay.
- Access denied: moto 5 enforces IAM (its "IAM-like access control") once the number of
  requests given by ``INITIAL_NO_AUTH_ACTION_COUNT`` has passed; the server also takes a new
  count at ``POST /moto-api/reset-auth`` (body: the count, Content-Type text/plain), which is
  what ``user_without_access()`` uses: it creates an IAM user with no policy and turns
  enforcement on for the whole server until ``reset()``. From then on every request must be
  signed with the key of an IAM user that moto knows; ``env()`` always holds the key of an
  admin user (inline policy ``*`` on ``*``) created for this, so it keeps working.
  moto evaluates the policy for real (secretsmanager:GetSecretValue is checked against the
  user's policies; the Resource and Condition parts of policies are NOT evaluated by moto).
- moto answers an auth failure in its IAM/XML form with HTTP 403 even for JSON-protocol services
  like Secrets Manager, which botocore then reports as error code "403" with the XML as message.
  The proxy rewrites those answers into the JSON form the real service sends (``__type``), so
  the code under test sees what it would see against AWS: AccessDenied ->
  AccessDeniedException (HTTP 400, per the Secrets Manager "Common Errors" page),
  InvalidClientTokenId -> UnrecognizedClientException (400), SignatureDoesNotMatch ->
  InvalidSignatureException (400). The decision stays moto's; only the wire form changes, and
  the message is moto's own. ``MotoServer(translate_auth_errors=False)`` turns this off.
- ``inject(status=..., delay=..., times=...)``: the proxy answers the next Secrets Manager
  requests itself with that status (the JSON error the service uses for it), or delays them
  before relaying (``stop()`` drops a request still held). For 5xx / throttling / slow-server
  tests; clearly not moto's behaviour.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

from peers import stop_group
from request_body import HOP_BY_HOP, read_body

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account: every user and secret here lives in it
ADMIN_USER = "gatekey-admin"
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
_PORT_LINE = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")
# Dropped from the environment moto starts with: they would change what it does.
_MOTO_ENV_PREFIXES = ("AWS_", "MOTO_", "INITIAL_NO_AUTH_ACTION_COUNT", "TEST_SERVER_MODE")
# content-length: set again from the body actually relayed; expect: 100-continue answered here.
_HOP_BY_HOP = HOP_BY_HOP | {"content-length", "expect"}
# moto's IAM error codes -> what Secrets Manager (JSON protocol) answers instead.
_AUTH_ERRORS = {
    "AccessDenied": ("AccessDeniedException", 400),
    "InvalidClientTokenId": ("UnrecognizedClientException", 400),
    "SignatureDoesNotMatch": ("InvalidSignatureException", 400),
}
_INJECTED_CODES = {
    400: "ThrottlingException",
    429: "ThrottlingException",
    500: "InternalServiceError",
    503: "ServiceUnavailable",
}


@dataclass(frozen=True)
class SeenRequest:
    """One request the proxy relayed (or answered itself, ``injected``)."""

    action: str  # "GetSecretValue", ... ("" when the request named no X-Amz-Target)
    secret_id: str | None  # the SecretId in the body, as sent
    access_key_id: str | None  # from the SigV4 Authorization header
    status: int  # what the client got
    error_code: str | None  # the __type the client got, if any
    injected: bool = False


@dataclass
class _Fault:
    status: int | None
    delay: float
    code: str | None


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream_port: int, translate: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream_port = upstream_port
        self.translate = translate
        self.lock = threading.Lock()
        self.seen: list[SeenRequest] = []
        self.arrived: list[str] = []  # the action of every request, on arrival
        self.stopping = threading.Event()
        self.faults: list[_Fault] = []
        self.open_sockets: set[socket.socket] = set()

    def next_fault(self) -> _Fault | None:
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    def record(self, seen: SeenRequest) -> None:
        with self.lock:
            self.seen.append(seen)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its deadline passed during an injected delay) closed the
        # connection before the answer: expected in timeout tests, not worth a traceback.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    timeout = 60
    server: _Proxy

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.open_sockets.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # moto's own log has every request

    def do_GET(self) -> None:
        self._relay()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    def _relay(self) -> None:
        body = read_body(self)
        target = self.headers.get("X-Amz-Target") or ""
        action = target.rsplit(".", 1)[-1] if target else ""
        secret_id = _secret_id(body) if target else None
        key_id = _access_key_id(self.headers.get("Authorization", ""))
        with self.server.lock:
            self.server.arrived.append(action)
        fault = self.server.next_fault() if target.startswith("secretsmanager.") else None
        if fault is not None and fault.delay and self.server.stopping.wait(fault.delay):
            return  # stopped while holding it: no answer (stop() closes the connection)
        if fault is not None and fault.status is not None:
            code = fault.code or _INJECTED_CODES.get(fault.status, "InternalServiceError")
            payload = json.dumps({"__type": code, "Message": "injected by the test proxy"})
            self.server.record(SeenRequest(action, secret_id, key_id, fault.status, code, True))
            self._answer(fault.status, [("Content-Type", "application/x-amz-json-1.1")], payload)
            return

        conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=60)
        try:
            # The Host header goes through unchanged: moto checks SigV4 signatures against it.
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            status, data = resp.status, resp.read()
            headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP]
        finally:
            conn.close()

        error_code = None
        if target and status >= 400:
            error_code = _json_error_code(data)
            translated = self.server.translate and _translate_auth_error(data)
            if translated:
                error_code, status, data = translated
                headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
                headers.append(("Content-Type", "application/x-amz-json-1.1"))
        self.server.record(SeenRequest(action, secret_id, key_id, status, error_code))
        self._answer(status, headers, data)

    def _answer(self, status: int, headers: list[tuple[str, str]], body: str | bytes) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _secret_id(body: bytes) -> str | None:
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return None
    value = doc.get("SecretId") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


def _access_key_id(authorization: str) -> str | None:
    m = re.search(r"Credential=([^/,\s]+)/", authorization)
    return m.group(1) if m else None


def _json_error_code(data: bytes) -> str | None:
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    code = doc.get("__type") if isinstance(doc, dict) else None
    return code.rsplit("#", 1)[-1] if isinstance(code, str) else None


def _translate_auth_error(data: bytes) -> tuple[str, int, bytes] | None:
    """moto's ``<ErrorResponse>`` for an auth failure -> (code, status, JSON body) as AWS sends
    it for a JSON-protocol service; None for anything else."""
    text = data.decode("utf-8", "replace")
    if "<ErrorResponse" not in text:
        return None
    code_m = re.search(r"<Code>([^<]*)</Code>", text)
    message_m = re.search(r"<Message>([^<]*)</Message>", text)
    if not code_m or code_m.group(1) not in _AUTH_ERRORS:
        return None
    code, status = _AUTH_ERRORS[code_m.group(1)]
    message = _unescape(message_m.group(1)) if message_m else ""
    return code, status, json.dumps({"__type": code, "Message": message}).encode()


def _unescape(text: str) -> str:
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'")):
        text = text.replace(entity, char)
    return text.replace("&amp;", "&")


class MotoServer:
    """moto's server in its own process group, with the counting proxy in front of it."""

    def __init__(
        self, workdir: Path, *, timeout: float = 20.0, translate_auth_errors: bool = True
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "moto.log"
        self.aws_dir = workdir / "aws"
        self.aws_dir.mkdir(exist_ok=True)
        # botocore reads these instead of ~/.aws: a region and no profiles or keys at all.
        (self.aws_dir / "config").write_text(f"[default]\nregion = {REGION}\n")
        (self.aws_dir / "credentials").write_text("")
        self.startup_s = 0.0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._moto_port = 0
        self._proxy: _Proxy | None = None
        self._proxy_thread: threading.Thread | None = None
        self._admin_key: tuple[str, str] | None = None
        self._enforcing = False
        self._users = 0
        self._translate = translate_auth_errors
        self._session: Any = None
        self._clients: dict[tuple[str, str], Any] = {}
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    # --- life cycle ---------------------------------------------------------------------------
    def _start(self, timeout: float) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_MOTO_ENV_PREFIXES)}
        env.update(
            PYTHONUNBUFFERED="1",
            AWS_CONFIG_FILE=str(self.aws_dir / "config"),
            AWS_SHARED_CREDENTIALS_FILE=str(self.aws_dir / "credentials"),
        )
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            env=env,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() kills all of it
        )
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto exited with {self.proc.returncode}:\n{self.logs()}")
            if not self._moto_port:
                m = _PORT_LINE.search(self.logs())
                self._moto_port = int(m.group(1)) if m else 0
            if self._moto_port and self._answers("/moto-api/"):
                break
            time.sleep(0.02)
        else:
            raise TimeoutError(f"moto was not ready in {timeout} s:\n{self.logs()}")
        self._proxy = _Proxy(self._moto_port, self._translate)
        self._proxy_thread = threading.Thread(
            target=self._proxy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._proxy_thread.start()
        self.startup_s = time.monotonic() - t0

    def _answers(self, path: str) -> bool:
        try:
            return self._request("GET", path, timeout=1) < 500
        except OSError:
            return False

    def _request(self, method: str, path: str, body: bytes = b"", timeout: float = 10) -> int:
        # http.client, not urllib: an HTTP(S)_PROXY in the environment must not see loopback.
        conn = http.client.HTTPConnection("127.0.0.1", self._moto_port, timeout=timeout)
        try:
            # text/plain: with a form content type moto would see no body at all.
            conn.request(method, path, body=body, headers={"Content-Type": "text/plain"})
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def stop(self) -> None:
        """Close the proxy and its connections; SIGTERM moto's group, SIGKILL after 5 s; wait.
        Idempotent."""
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            proxy.stopping.set()
            proxy.shutdown()
            proxy.server_close()
            with proxy.lock:
                sockets = list(proxy.open_sockets)
            for sock in sockets:
                with suppress(OSError):  # already closed by the client
                    sock.shutdown(socket.SHUT_RDWR)
        if self._proxy_thread is not None:
            self._proxy_thread.join(5)
            self._proxy_thread = None
        stop_group(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every secret, IAM user, count and injected fault; IAM enforcement off."""
        self._post("/moto-api/reset")
        self._set_enforcement(False)
        self._admin_key = None
        if self._proxy is not None:
            with self._proxy.lock:
                self._proxy.seen.clear()
                self._proxy.arrived.clear()
                self._proxy.faults.clear()

    # --- where it is ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The proxy's port (what clients connect to)."""
        if self._proxy is None:
            raise RuntimeError("the moto peer is stopped")
        return int(self._proxy.server_address[1])

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>`` of the proxy: give this to the code under test."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def moto_port(self) -> int:
        return self._moto_port

    @property
    def moto_endpoint(self) -> str:
        """moto itself, bypassing the proxy (not counted, errors untranslated)."""
        return f"http://127.0.0.1:{self._moto_port}"

    @property
    def enforcing(self) -> bool:
        """Whether moto checks signatures and IAM policies now (see ``user_without_access``)."""
        return self._enforcing

    def env(self) -> dict[str, str]:
        """What a subprocess needs to reach this server with boto3 and no code change."""
        key_id, secret = self._admin()
        return {
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.endpoint,
            "AWS_ACCESS_KEY_ID": key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(self.aws_dir / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.aws_dir / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",  # never wait on an instance-metadata probe
            "NO_PROXY": "127.0.0.1,localhost",  # an inherited HTTP(S)_PROXY must not see loopback
        }

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- admin (straight to moto, never counted) ------------------------------------------------
    def admin(self, service: str = "secretsmanager") -> Any:
        """A boto3 client for ``service`` on moto itself, signed with the admin user's key."""
        key_id, secret = self._admin()
        return self._client(service, key_id, secret)

    def _client(self, service: str, key_id: str, secret: str) -> Any:
        cached = self._clients.get((service, key_id))
        if cached is not None:
            return cached
        import boto3
        from botocore.config import Config

        if self._session is None:
            self._session = boto3.session.Session()  # a client per session costs ~70 ms
        client = self._session.client(
            service,
            endpoint_url=self.moto_endpoint,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=5,
                proxies={},  # not None: botocore would take HTTP(S)_PROXY from the environment
            ),
        )
        self._clients[(service, key_id)] = client
        return client

    def _admin(self) -> tuple[str, str]:
        if self._admin_key is None:
            # Only ever reached with enforcement off (reset() turns it off and forgets the
            # admin), so these requests need no valid key.
            iam = self._client("iam", "testing", "testing")
            iam.create_user(UserName=ADMIN_USER)
            iam.put_user_policy(
                UserName=ADMIN_USER, PolicyName="allow-all", PolicyDocument=json.dumps(ALLOW_ALL)
            )
            key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
            self._admin_key = (key["AccessKeyId"], key["SecretAccessKey"])
        return self._admin_key

    def create_secret(
        self, name: str, value: str | bytes | dict[str, Any], *, description: str | None = None
    ) -> str:
        """A new secret whose first version (AWSCURRENT) is ``value``; returns its ARN. A dict
        is stored as JSON text (SecretString), bytes as SecretBinary."""
        kwargs: dict[str, Any] = {"Name": name, **_value_kwargs(value)}
        if description is not None:
            kwargs["Description"] = description
        return str(self.admin().create_secret(**kwargs)["ARN"])

    def put_value(
        self, name: str, value: str | bytes | dict[str, Any], *, stages: Sequence[str] | None = None
    ) -> str:
        """A new version of ``name``; returns its VersionId. With no ``stages`` it becomes
        AWSCURRENT and the old current one AWSPREVIOUS (a rotation, as a client sees it)."""
        kwargs: dict[str, Any] = {"SecretId": name, **_value_kwargs(value)}
        if stages is not None:
            kwargs["VersionStages"] = list(stages)
        return str(self.admin().put_secret_value(**kwargs)["VersionId"])

    def delete_secret(self, name: str, force: bool = True) -> None:
        """Gone at once with ``force``; else scheduled for deletion (30 days), which makes
        GetSecretValue fail with InvalidRequestException until restored."""
        kwargs: dict[str, Any] = {"SecretId": name}
        if force:
            kwargs["ForceDeleteWithoutRecovery"] = True
        self.admin().delete_secret(**kwargs)

    def stages(self, name: str) -> dict[str, list[str]]:
        """VersionId -> its staging labels (AWSCURRENT, AWSPREVIOUS, ...)."""
        described = self.admin().describe_secret(SecretId=name)
        return {k: list(v) for k, v in described.get("VersionIdsToStages", {}).items()}

    # --- access denied --------------------------------------------------------------------------
    def user_without_access(self) -> dict[str, str]:
        """``env()`` with the key of a new IAM user that has no policy at all, and IAM
        enforcement turned on for the whole server until ``reset()``: GetSecretValue with this
        environment fails with AccessDeniedException, while ``env()`` keeps working."""
        self._admin()
        self._users += 1
        name = f"gatekey-denied-{self._users}"
        iam = self.admin("iam")
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        self._set_enforcement(True)
        return dict(
            self.env(),
            AWS_ACCESS_KEY_ID=key["AccessKeyId"],
            AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"],
        )

    def _set_enforcement(self, on: bool) -> None:
        # The body is the number of requests moto lets through before it starts checking.
        self._post("/moto-api/reset-auth", b"0" if on else b"inf")
        self._enforcing = on

    def _post(self, path: str, body: bytes = b"") -> None:
        status = self._request("POST", path, body)
        if status != 200:
            raise RuntimeError(f"moto answered {status} to POST {path}:\n{self.logs()[-2000:]}")

    # --- what it saw ----------------------------------------------------------------------------
    @property
    def seen(self) -> list[SeenRequest]:
        """Every Secrets Manager (or other) request the proxy handled, in order."""
        if self._proxy is None:
            return []
        with self._proxy.lock:
            return list(self._proxy.seen)

    def calls(self, action: str, secret_id: str | None = None) -> int:
        return sum(
            1
            for s in self.seen
            if s.action == action and (secret_id is None or s.secret_id == secret_id)
        )

    def arrivals(self, action: str) -> int:
        """Requests for ``action`` that arrived at the proxy, answered or still held."""
        if self._proxy is None:
            return 0
        with self._proxy.lock:
            return self._proxy.arrived.count(action)

    def get_secret_value_calls(self, secret_id: str | None = None) -> int:
        """GetSecretValue requests that reached the server (for ``secret_id`` as sent: a name
        and an ARN of the same secret count apart), whatever they were answered."""
        return self.calls("GetSecretValue", secret_id)

    # --- faults ---------------------------------------------------------------------------------
    def inject(
        self,
        *,
        status: int | None = None,
        delay: float = 0.0,
        times: int = 1,
        code: str | None = None,
    ) -> None:
        """The next ``times`` Secrets Manager requests: wait ``delay`` s, then either answer
        ``status`` with the service's JSON error (``code``, default by status:
        InternalServiceError, ServiceUnavailable, ThrottlingException) or, with no status,
        relay to moto as usual. Injected answers are in ``seen`` with ``injected=True``."""
        if self._proxy is None:
            raise RuntimeError("the moto peer is stopped")
        with self._proxy.lock:
            self._proxy.faults.extend(_Fault(status, delay, code) for _ in range(times))


def _value_kwargs(value: str | bytes | dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, bytes):
        return {"SecretBinary": value}
    if isinstance(value, dict):
        return {"SecretString": json.dumps(value)}
    return {"SecretString": value}


@contextmanager
def moto_server(tmp_path: Path, **kwargs: Any) -> Iterator[MotoServer]:
    """A ``MotoServer`` in ``tmp_path/moto``, stopped on exit."""
    server = MotoServer(tmp_path / "moto", **kwargs)
    try:
        yield server
    finally:
        server.stop()
