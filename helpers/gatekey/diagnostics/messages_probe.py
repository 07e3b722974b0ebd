"""Doctor's opt-in "messages" check (--probe-messages): one minimal inference through the gateway.

A gateway can list models and still fail at inference (a streaming path that answers 500 or
cuts the stream, a route that answers ``stream: true`` with one JSON body). This check sends
what Claude sends for a turn, as small as it can be: ``POST {gateway}/v1/messages`` with
``max_tokens: 1``, ``stream: true`` and one short user message, with the credential and headers
of the gateway check (Reached). It is billable (a few input tokens and one output token), hence
off unless asked for.

The answer is read as Server-Sent Events within MESSAGES_TIMEOUT for the whole exchange and at
most MAX_STREAM bytes. Only event names, statuses and the gateway's error messages are kept,
never the generated text. Pass: ``message_start`` ... ``message_stop``.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gatekey.checks import FAIL, OK, SKIP, Check
from gatekey.context import RunContext
from gatekey.diagnostics import advice, gateway_advice
from gatekey.diagnostics.gateway_probe import error_in, ssl_reason, tls_reason
from gatekey.errors import DeadlineExceeded
from gatekey.token import jwt_claims

if TYPE_CHECKING:
    import requests

    from gatekey.config import Profile
    from gatekey.diagnostics.gateway_probe import Reached
    from gatekey.token import Token

MESSAGES_TIMEOUT = 30.0  # the whole exchange; one token of output comes well inside it
MAX_STREAM = 256 * 1024  # a one-token stream is about 2 KB
READ_SIZE = 4096
PROMPT = "Reply with the single word: ok"
_EVENT_NAME = re.compile(r"[a-z_]{1,40}")


@dataclass
class Stream:
    """What was read of the answer so far (filled by the thread that reads it)."""

    status: int | None = None
    content_type: str = ""
    events: list[str] = field(default_factory=list)  # names, in order
    error: str = ""  # an ``event: error``'s type and message
    broke: str = ""  # why reading stopped early (an exception's name, or too big)
    body: bytes = b""  # a non-streamed answer (an error body), at most MAX_STREAM bytes
    late: bool = False  # MESSAGES_TIMEOUT passed before the answer was complete
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self) -> list[str]:
        with self.lock:
            return list(self.events)


def check(prof: Profile, reached: Reached | None, model: str | None, token: Token | None) -> Check:
    """Doctor's "messages" check (see the module docstring)."""
    if reached is None or token is None:
        return Check("messages", SKIP, "no gateway URL or no token (see the gateway check)")
    if reached.status is None:
        return Check("messages", SKIP, "the gateway was not reached (see the gateway check)")
    if reached.status in (401, 403) or 300 <= reached.status < 400:
        return Check(
            "messages",
            SKIP,
            f"GET /v1/models answered {reached.status} (see the gateway check); no message sent",
        )
    model = model or (reached.models[0] if reached.models else None)
    if not model:
        return Check(
            "messages",
            SKIP,
            "no model to ask: the gateway listed none",
            ["name one: gatekey doctor --probe-messages --model NAME"],
        )
    endpoint = reached.base + "/v1/messages"
    data: dict[str, Any] = {"url": endpoint, "model": model, "billable": True}
    import requests

    stream = Stream()
    try:
        _exchange(reached, endpoint, model, stream)
    except DeadlineExceeded:
        stream.late = True  # judged below on what was read in time
    except requests.exceptions.RequestException as e:  # no answer at all: TLS, the network
        return _unreached(endpoint, e, data)
    data.update(status=stream.status, events=stream.seen()[:20])
    return advice.combine(
        Check("messages", OK, "", [], data), [_judge(prof, endpoint, model, token, stream)]
    )


def _exchange(reached: Reached, endpoint: str, model: str, stream: Stream) -> None:
    """POST the message and read the answer into ``stream``, within MESSAGES_TIMEOUT."""
    import requests

    from gatekey.deadlines import call_within
    from gatekey.http import IdpSession

    body = json.dumps(
        {
            "model": model,
            "max_tokens": 1,
            "stream": True,
            "messages": [{"role": "user", "content": PROMPT}],
        }
    )
    headers = {**reached.headers, "content-type": "application/json"}

    def send() -> None:
        run = RunContext("background", interactive=False, timeout=MESSAGES_TIMEOUT)
        # The trust that reached the gateway in the gateway check; no redirect (the token
        # must not follow one to another host).
        with IdpSession(run, ca_bundle=reached.ca_bundle, loopback_http=True) as session:
            response = requests.Session.request(
                session,
                "POST",
                endpoint,
                headers=headers,
                data=body.encode(),
                allow_redirects=False,
                stream=True,
                timeout=(5.0, MESSAGES_TIMEOUT),
            )
            with response:
                _read(response, stream)

    def late() -> DeadlineExceeded:
        return DeadlineExceeded(f"no complete answer within {MESSAGES_TIMEOUT:g} s")

    call_within(send, MESSAGES_TIMEOUT, late)


def _read(response: requests.Response, stream: Stream) -> None:
    """The answer into ``stream``: events from an event stream, else the body (bounded)."""
    stream.status = response.status_code
    stream.content_type = response.headers.get("Content-Type", "")
    # read1: whatever has arrived, so a stream that stalls is judged on the events before it
    # (read(n) waits for n bytes). urllib3 1.x has no read1: small reads there, so at most the
    # last few bytes before a stall go unjudged.
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    size_wanted = READ_SIZE if read1 is not None else 64
    read = read1 or raw.read
    sse = response.status_code == 200 and _is_event_stream(stream.content_type)
    pending, size = b"", 0
    try:
        while True:
            chunk = read(size_wanted, decode_content=True)
            if not chunk:
                return
            size += len(chunk)
            if size > MAX_STREAM:
                stream.broke = f"more than {MAX_STREAM // 1024} KiB"
                return
            if not sse:
                stream.body += chunk
                continue
            pending += chunk
            *blocks, pending = re.split(rb"\r?\n\r?\n", pending)
            for block in blocks:
                if _event(block, stream) in ("message_stop", "error"):
                    return  # Claude stops here too; the connection may stay open
    except Exception as e:  # requests', urllib3's (ProtocolError) or the socket's: cut short
        stream.broke = type(e).__name__


def _event(block: bytes, stream: Stream) -> str:
    """One Server-Sent Event into ``stream``; its name."""
    name, data = "", []
    for line in block.decode("utf-8", "replace").splitlines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    try:
        payload: Any = json.loads("\n".join(data)) if data else None
    except ValueError:
        payload = None
    if not name and isinstance(payload, dict) and isinstance(payload.get("type"), str):
        name = payload["type"]
    name = name if _EVENT_NAME.fullmatch(name) else "?"
    if name == "error":
        error = payload.get("error") if isinstance(payload, dict) else None
        error = error if isinstance(error, dict) else {}
        kind, message = str(error.get("type") or ""), str(error.get("message") or "")
        stream.error = ": ".join(p for p in (kind[:60], message.strip()[:200]) if p) or "no detail"
    with stream.lock:
        stream.events.append(name)
    return name


def _is_event_stream(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "text/event-stream"


# --- judging what was read -------------------------------------------------------------------
def _judge(prof: Profile, endpoint: str, model: str, token: Token, stream: Stream) -> Check:
    head = f"POST {endpoint} (model {model}, max_tokens 1, streaming)"
    status = stream.status
    if status is None:
        return Check(
            "messages",
            FAIL,
            f"{head}: no answer within {MESSAGES_TIMEOUT:g} s",
            ["check the gateway's upstream: it lists models but does not answer a message"],
        )
    if status != 200:
        return _refused(prof, endpoint, model, token, stream)
    if not _is_event_stream(stream.content_type):
        got = stream.content_type.split(";")[0].strip() or "no Content-Type"
        return Check(
            "messages",
            FAIL,
            f"{head} answered 200 with {got}, not a text/event-stream: the gateway does not "
            "stream, and Claude streams every answer",
            [
                "make the gateway pass stream: true to its upstream and answer with its "
                "Server-Sent Events (a mocked or non-streaming route answers one JSON body)"
            ],
        )
    events = stream.seen()
    before = [e for e in events if e != "error"]  # what came before the stream stopped
    shown = " ".join(before[:12]) + (" ..." if len(before) > 12 else "")
    so_far = f"after {len(before)} event(s) ({shown})" if before else "before any event"
    cut = [
        "the gateway, its upstream or a proxy between cuts streamed answers short: look at its "
        "logs, and at buffering or timeouts for streaming responses"
    ]
    if stream.error:
        return Check(
            "messages",
            FAIL,
            f"{head}: the stream sent an error event ({stream.error}) {so_far}",
            ["the gateway or its upstream failed mid-answer: see the gateway's logs"],
        )
    if "message_start" in events and "message_stop" in events:
        return Check(
            "messages",
            OK,
            f"{head} streamed message_start ... message_stop ({len(events)} events): the "
            "gateway serves inference (one billable request)",
        )
    if stream.broke:
        return Check("messages", FAIL, f"{head}: the stream broke {so_far} ({stream.broke})", cut)
    missing = "message_start" if "message_start" not in events else "message_stop"
    if stream.late:
        return Check(
            "messages",
            FAIL,
            f"{head}: no {missing} within {MESSAGES_TIMEOUT:g} s; the stream stalled {so_far}",
            cut,
        )
    return Check("messages", FAIL, f"{head}: the stream ended {so_far} without {missing}", cut)


def _refused(prof: Profile, endpoint: str, model: str, token: Token, stream: Stream) -> Check:
    """A status other than 200: the models probe's advice, and a model the gateway lacks."""
    status = stream.status or 0
    message, kind = error_in(status, stream.body.decode("utf-8", "replace"))
    if status in (400, 404) and re.search(r"\bmodel", message, re.IGNORECASE):
        return Check(
            "messages",
            FAIL,
            f"POST {endpoint} answered {status}: the gateway does not serve model {model} "
            f"({message})",
            ["name a model the gateway serves: gatekey doctor --probe-messages --model NAME"],
        )
    found = gateway_advice.answer(
        status,
        endpoint=endpoint,
        profile=prof,
        claims=jwt_claims(token.value),
        method="POST",
        message=message,
        error_type=kind,
    )
    return Check("messages", found.verdict, found.detail, found.fixes)


def _unreached(endpoint: str, error: Exception, data: dict[str, Any]) -> Check:
    """The POST did not get an answer: TLS or the network (the gateway check got through)."""
    from gatekey.http import exception_reason

    host = endpoint.split("/")[2]
    if ssl_reason(error):
        why = f"TLS with {host} failed: {tls_reason(error)}"
    else:
        why = f"cannot reach {host} ({exception_reason(error)})"
    return Check(
        "messages",
        FAIL,
        f"POST {endpoint}: {why}",
        ["the gateway answered GET /v1/models a moment ago: see its logs and the network"],
        data,
    )
