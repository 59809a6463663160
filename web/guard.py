"""The first thing every request meets, and the last thing every answer passes: security headers,
and the checks that need nothing but the request's head and its (small) body.

- **Host.** The Host header must name the station: an IP address, `localhost`, the machine's name
  (also `<name>.local`), or a name listed in `web.allowed_hosts`. Anything else is refused (421), so
  a page on another domain that re-points its DNS at the station (DNS rebinding) reads nothing.
- **Cross-site writes.** A request that changes something (POST, PUT, PATCH, DELETE) is refused (403)
  when the browser says it came from another site or another origin (`Sec-Fetch-Site`, else an
  `Origin` that is not this scheme, host and port): SameSite cookies do not cover a page on another
  port of the same address. Clients that send neither (curl, scripts) still need the token.
- **Form posts** (the page's own forms, outside /api/) must be form-encoded (415 otherwise), so a
  JSON or empty body cannot quietly clear a field.
- **Bodies** are read here, whole, before the app sees them: at most 64 KiB, declared or chunked (413),
  and all of it within BODY_TIMEOUT_S (408), so a body that stops arriving holds nothing for long.
  (A request's head has its own deadline: web/page_server.py.)

A plain ASGI middleware rather than BaseHTTPMiddleware, so the live event stream passes through
untouched and without an extra task per request.
"""
from __future__ import annotations

import ipaddress
import json
import socket
from typing import Iterable, Optional
from urllib.parse import urlsplit

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024
BODY_TIMEOUT_S = 10.0  # 64 KiB takes milliseconds on a LAN; a body slower than this is a stalled or hostile client
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                 b"object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
CHANGES = {"POST", "PUT", "PATCH", "DELETE"}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def station_names(extra: Iterable[str] = ()) -> frozenset[str]:
    """The host names the station answers to, lower case, without a port."""
    name = socket.gethostname().lower()
    return frozenset({"localhost", name, f"{name}.local", *(h.lower().rstrip(".") for h in extra)})


def _host_only(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [IPv6]:port
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class GuardMiddleware:
    def __init__(self, app: ASGIApp, allowed_hosts: Optional[Iterable[str]] = None):
        self.app = app
        self.names = station_names(allowed_hosts or ())
        self.any_host = "*" in self.names

    def _refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> Optional[tuple[int, str]]:
        host = headers.get(b"host", b"").decode("latin-1")
        bare = _host_only(host)
        if not self.any_host and not (_is_ip(bare) or bare in self.names):
            return 421, (f"this station does not answer to the host name {bare!r}; use its address, or add the "
                         "name to web.allowed_hosts")
        method = scope["method"]
        if method in CHANGES:
            fetch_site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
            origin = headers.get(b"origin", b"").decode("latin-1")
            if fetch_site and fetch_site not in ("same-origin", "none"):
                return 403, "cross-site request refused: change settings from the station's own page"
            if not fetch_site and origin and origin != "null":
                parts = urlsplit(origin)
                if parts.scheme != scope.get("scheme", "http") or parts.netloc.lower() != host.lower():
                    return 403, "cross-origin request refused: change settings from the station's own page"
            if origin == "null":
                return 403, "request from an opaque origin refused"
        return None

    @staticmethod
    def _not_form(scope: Scope, headers: dict[bytes, bytes], body: bytes) -> bool:
        """A post to one of the page's forms whose body is something else than form data (an empty
        body with no type is an empty form, as curl -X POST sends it)."""
        if scope["method"] != "POST" or scope["path"].startswith("/api/"):
            return False
        kind = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        return kind not in FORM_TYPES and bool(kind or body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        refused = self._refusal(scope, headers)
        if refused is not None:
            await answer(send, *refused, SECURITY_HEADERS)
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            await _too_large(send)
            return
        try:
            with anyio.fail_after(BODY_TIMEOUT_S):
                wants_body = scope["method"] in CHANGES or declared or b"transfer-encoding" in headers
                body = await _read_body(receive) if wants_body else b""
        except TimeoutError:
            await answer(send, 408, f"the request body did not arrive within {BODY_TIMEOUT_S:g} s", SECURITY_HEADERS)
            return
        if body is None:
            await _too_large(send)
            return
        if self._not_form(scope, headers, body):
            await answer(send, 415, "the page's forms send form data (application/x-www-form-urlencoded)", SECURITY_HEADERS)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would tell it

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, replay, send_with_headers)


async def _read_body(receive: Receive) -> Optional[bytes]:
    """The whole request body, or None once it passes MAX_BODY_BYTES (declared or chunked)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def answer(send: Send, status: int, detail: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """A JSON {"detail": ...} answer sent straight from a middleware, before any route. (The guard's
    own answers add SECURITY_HEADERS; a middleware inside it gets them from the guard's send.)"""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


async def _too_large(send: Send) -> None:
    await answer(send, 413, "request body too large (the page accepts at most 64 KiB)", SECURITY_HEADERS)
