"""Who may read and who may change things.

Writes (settings, labels, corrections, deletes) need the token set at install. A trainer on a
phone types it once on the sign-in form; the page then keeps an HttpOnly, SameSite=Strict cookie
holding a keyed digest of the token (never the token itself), so changing the token signs every
phone out. Scripts send `Authorization: Bearer <token>`. Every comparison is constant-time.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Optional

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
        if self._digest is None:
            return False
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and given:
            return self.token_matches(given.strip())
        cookie = request.cookies.get(COOKIE)
        return bool(cookie) and hmac.compare_digest(cookie.encode("utf-8", "surrogateescape"), self._cookie.encode())

    def check_read(self, request: Request) -> None:
        if self.read_requires_token and not self.authenticated(request):
            raise LoginRequired("reading this station's rep log needs the trainer token (sign in, or send Authorization: Bearer <token>)")

    def check_write(self, request: Request) -> None:
        if not self.configured:
            raise HTTPException(403, NO_TOKEN_HELP)
        if not self.authenticated(request):
            raise LoginRequired("this change needs the trainer token: sign in on the Settings page, or send Authorization: Bearer <token>")
