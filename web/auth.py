"""Who may read and who may change things.

Writes (settings, labels, corrections, deletes) need the token set at install. A trainer on a
phone types it once on the sign-in form; the page then keeps an HttpOnly, SameSite=Strict cookie
holding a keyed digest of the token (never the token itself), so changing the token signs every
phone out. Scripts send `Authorization: Bearer <token>`. Every comparison is constant-time.

Wrong tokens are counted per client address: after `FailedSignIns.limit` within a minute that
client must wait (429 with Retry-After, doubling up to a quarter of an hour) before it may try
again, and each refusal is logged with the address. Other clients are not affected.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import OrderedDict
from typing import Callable, Optional

from fastapi import HTTPException, Request
from pydantic import SecretStr

from device.errors import ConfigError

COOKIE = "hinge_station_auth"
COOKIE_MAX_AGE_S = 180 * 24 * 3600
MIN_TOKEN_LENGTH = 8
NO_TOKEN_HELP = (
    "changes are turned off on this station: no write token is set. Set web.token in the station's config "
    "file (or the HINGE_WEB__TOKEN environment variable) and restart the station"
)


log = logging.getLogger("station.web")


class FailedSignIns:
    """Wrong tokens per client address, and the wait each has earned."""

    limit = 5  # wrong tokens within `window_s` before a client must wait
    window_s = 60.0
    first_wait_s = 30.0
    max_wait_s = 900.0
    max_clients = 4096

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, tuple[list[float], float, float]] = OrderedDict()  # tries, until, next wait

    def wait_s(self, client: str) -> float:
        """Seconds this client must still wait before its next try (0: it may try)."""
        with self._lock:
            entry = self._clients.get(client)
            return max(0.0, entry[1] - self.clock()) if entry else 0.0

    def failed(self, client: str) -> None:
        now = self.clock()
        with self._lock:
            tries, until, wait = self._clients.pop(client, ([], 0.0, self.first_wait_s))
            tries = [t for t in tries if now - t < self.window_s] + [now]
            if len(tries) >= self.limit:
                until, tries = now + wait, []
                log.warning("sign-in: %d wrong tokens from %s; it must wait %.0f s", self.limit, client, wait)
                wait = min(wait * 2, self.max_wait_s)
            else:
                log.warning("sign-in: wrong token from %s", client)
            self._clients[client] = (tries, until, wait)
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)


def client_of(request: Request) -> str:
    return request.client.host if request.client else "?"


class LoginRequired(HTTPException):
    """Reading needs the token here; pages answer it with the sign-in form, the API with 401."""

    def __init__(self, detail: str):
        super().__init__(401, detail, headers={"WWW-Authenticate": "Bearer"})


class TokenGate:
    def __init__(self, token: Optional[SecretStr], read_requires_token: bool):
        secret = token.get_secret_value() if token is not None else ""
        if token is not None and len(secret) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"web.token must be at least {MIN_TOKEN_LENGTH} characters")
        if read_requires_token and not secret:
            raise ConfigError("web.read_requires_token is on but web.token is not set; set a token or allow open reading")
        self._digest = hashlib.sha256(secret.encode()).digest() if secret else None
        self._cookie = hmac.new(secret.encode(), b"hinge-station page cookie v1", hashlib.sha256).hexdigest() if secret else None
        self.read_requires_token = read_requires_token
        self.failures = FailedSignIns()

    def check_token(self, request: Request, given: str) -> bool:
        """Compare a token a client sent, counting wrong ones against that client; raises 429
        while the client must wait (before comparing: a waiting client learns nothing)."""
        client = client_of(request)
        wait = self.failures.wait_s(client)
        if wait > 0:
            raise HTTPException(429, f"too many wrong tokens from this device; try again in {int(wait) + 1} s",
                                headers={"Retry-After": str(int(wait) + 1)})
        if self.token_matches(given):
            self.failures.succeeded(client)
            return True
        self.failures.failed(client)
        return False

    @property
    def configured(self) -> bool:
        return self._digest is not None

    def token_matches(self, given: str) -> bool:
        if self._digest is None:
            return False
        return hmac.compare_digest(hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest(), self._digest)

    def cookie_value(self) -> str:
        assert self._cookie is not None
        return self._cookie

    def authenticated(self, request: Request) -> bool:
        if self._digest is None or self._cookie is None:
            return False
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and given:
            return self.check_token(request, given.strip())
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode("utf-8", "surrogateescape"), self._cookie.encode())

    def check_read(self, request: Request) -> None:
        if self.read_requires_token and not self.authenticated(request):
            raise LoginRequired("reading this station's rep log needs the trainer token (sign in, or send Authorization: Bearer <token>)")

    def check_write(self, request: Request) -> None:
        if not self.configured:
            raise HTTPException(403, NO_TOKEN_HELP)
        if not self.authenticated(request):
            raise LoginRequired("this change needs the trainer token: sign in on the Settings page, or send Authorization: Bearer <token>")
