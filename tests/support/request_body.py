"""For the test peers that relay requests (moto_peer, fault_proxy, faulty_idp): the hop-by-hop
headers a relay never passes on, and reading a request's body in a stdlib HTTP handler
(Content-Length or chunked: botocore sends chunked bodies)."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

# RFC 9110 section 7.6.1 (and the old Proxy-Connection); each relay adds what it re-frames.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
    }
)


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""
