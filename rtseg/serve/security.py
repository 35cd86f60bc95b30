"""Who may talk to the server: :class:`ServeSecurity` (allowed Host names and origins, the API
key), :func:`security_for` (the defaults for an address) and :class:`Guard`, the ASGI middleware
that checks the ``Host`` header, the ``Origin`` header and the key in front of every route."""

import hmac
import ipaddress
import json
import os
import sys
import urllib.parse
from dataclasses import dataclass, field

from rtseg.errors import RtsegError

#: Host names a loopback server answers to: anything else is a DNS-rebinding attempt (a foreign
#: name resolved to 127.0.0.1 so that a web page can read this server's answers).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
#: Reachable without the API key: the page (it asks for the key) and its assets, and liveness.
PUBLIC_PATHS = ("/", "/health")
PUBLIC_PREFIXES = ("/static/", "/ort/")  # the page's code and onnxruntime-web (no model)


@dataclass
class ServeSecurity:
    """Who may talk to the server. ``allowed_hosts``: Host header names answered (None: the
    loopback names; ``"*"``: any; ``"*.example.com"``: a domain and its subdomains).
    ``allowed_origins``: other sites (``https://app.example.com``, or ``"*"``) whose pages may call
    the API; the page's own origin is always allowed; listing any turns CORS on for them.
    ``api_key``: required as ``Authorization: Bearer KEY`` everywhere except :data:`PUBLIC_PATHS`."""

    allowed_hosts: list[str] | None = None
    allowed_origins: list[str] = field(default_factory=list)
    api_key: str | None = None

    def __post_init__(self) -> None:
        key = self.api_key
        if key is not None and (len(key) < 16 or not key.isascii() or not key.isprintable() or " " in key):
            raise RtsegError("--api-key / RTSEG_API_KEY: expected at least 16 printable ASCII characters without "
                             "spaces (it travels in an HTTP header); python -c 'import secrets; "
                             "print(secrets.token_urlsafe())' makes one")
        for origin in self.allowed_origins:
            parts = urllib.parse.urlsplit(origin)
            if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path):
                raise RtsegError(f"--allowed-origins {origin!r}: expected scheme://host[:port] "
                                 "(https://app.example.com) or *")

    def host_allowed(self, host_header: str) -> bool:
        name = _hostname(host_header)
        for pattern in self.allowed_hosts if self.allowed_hosts is not None else LOOPBACK_HOSTS:
            pattern = pattern.lower()
            wildcard = pattern.startswith("*.") and (name.endswith(pattern[1:]) or name == pattern[2:])
            if pattern == "*" or name == pattern or wildcard:
                return True
        return False

    def origin_allowed(self, origin: str, host_header: str) -> bool:
        """The page's own origin (same host and port as the request), or a listed one."""
        if urllib.parse.urlsplit(origin).netloc.lower() == host_header.lower():
            return True
        return "*" in self.allowed_origins or origin.rstrip("/") in [o.rstrip("/") for o in self.allowed_origins]

    def key_matches(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        # compare_digest: the time taken does not tell how much of a guessed key was right.
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())


def _hostname(host_header: str) -> str:
    """'Example.com:8000' -> 'example.com'; '[::1]:8000' -> '::1'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


class Guard:
    """ASGI middleware in front of every route, HTTP and WebSocket alike: Host, then Origin, then
    the API key. A refusal is a JSON 4xx (for a WebSocket, an HTTP answer to the handshake).
    The stream's key may also come as its first message, so :func:`stream` checks it there."""

    def __init__(self, app, security: ServeSecurity, cors: bool = False) -> None:
        self.app, self.security, self.cors = app, security, cors

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            refusal = self.check(scope)
            if refusal is not None:
                await _refuse(scope, receive, send, *refusal)
                return
        await self.app(scope, receive, send)

    def check(self, scope) -> tuple[int, str, dict] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host, origin = headers.get("host", ""), headers.get("origin")
        if not self.security.host_allowed(host):
            return 400, (f"Host {host!r} is not a name this server answers to (a loopback server answers "
                         "localhost, 127.0.0.1 and ::1); start it with --allowed-hosts NAME"), {}
        if origin is not None and not self.security.origin_allowed(origin, host):
            return 403, (f"Origin {origin!r}: pages from other sites may not call this server; start it with "
                         "--allowed-origins ORIGIN to allow one"), {}
        path = scope.get("path", "")
        if (self.security.api_key is None or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
                or scope["type"] == "websocket"
                or (self.cors and scope.get("method") == "OPTIONS")):  # a CORS preflight carries no credentials
            return None
        if not self.security.key_matches(headers.get("authorization", "")):
            return 401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'", \
                {"WWW-Authenticate": "Bearer"}
        return None


async def _refuse(scope, receive, send, status: int, message: str, headers: dict) -> None:
    body = json.dumps({"error": message, "status": status}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})
        return
    await receive()  # websocket.connect
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:  # a server without the denial extension: the handshake fails with 403
        await send({"type": "websocket.close", "code": 1008})


def security_for(host: str, allowed_hosts: list[str] | None = None, allowed_origins: list[str] | None = None,
                 api_key: str | None = None) -> ServeSecurity:
    """What a server bound to ``host`` accepts: a loopback one only loopback names, another any
    name unless ``allowed_hosts`` says; the key from ``api_key`` or ``$RTSEG_API_KEY``. Prints a
    warning for a non-loopback address without a key."""
    api_key = api_key or os.environ.get("RTSEG_API_KEY") or None
    if allowed_hosts is None and not is_loopback(host):
        allowed_hosts = ["*"]  # the names it is reached by are not known here
    if not is_loopback(host) and api_key is None:
        print(f"rtseg serve: warning: --host {host} exposes the server to the network without an API key: anyone "
              "who can reach it can use it. Set --api-key or RTSEG_API_KEY, and put a TLS reverse proxy in front "
              "(docs/serving.md)", file=sys.stderr, flush=True)
    return ServeSecurity(allowed_hosts=allowed_hosts, allowed_origins=list(allowed_origins or []), api_key=api_key)
