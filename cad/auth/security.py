"""Password hashing (argon2), short-lived access JWTs (PyJWT) and refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cad.errors import Unauthorized


class Role(StrEnum):
    CALL_HANDLER = "call_handler"
    DISPATCHER = "dispatcher"
    SUPERVISOR = "supervisor"
    UNIT = "unit"
    ADMIN = "admin"
    # Another agency's CAD, a machine client: EIDO exchange only.
    PARTNER = "partner"


STAFF = frozenset({Role.CALL_HANDLER, Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN})

_hasher = PasswordHasher()
# Verifying against this when the user does not exist keeps the timing the same.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    role: Role
    unit_id: int | None
    # The session the token belongs to: ending it refuses the token on every worker.
    session_id: str = ""

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.username}"


def issue_token(principal: Principal, secret: str, ttl_s: int) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(principal.user_id),
        "name": principal.username,
        "role": str(principal.role),
        "unit_id": principal.unit_id,
        "sid": principal.session_id,
        # Unique per token: two issued in one second for one session still differ.
        "jti": secrets.token_urlsafe(9),
        "iat": now,
        "exp": now + timedelta(seconds=ttl_s),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


# Tokens already verified, with their expiry: a console sends the same token with every
# request for 15 minutes, and checking its signature again each time cost more than the
# rest of the authentication. Bounded; the expiry is still checked on every use, and a
# session's end is the session guard's business, as for a freshly decoded token.
_VERIFIED: dict[tuple[str, str], tuple[Principal, float]] = {}
_VERIFIED_MAX = 4096


def decode_token(token: str, secret: str) -> Principal:
    known = _VERIFIED.get((token, secret))
    if known is not None:
        if known[1] <= time.time():
            raise Unauthorized("token expired")
        return known[0]
    principal, exp = _decode(token, secret)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[(token, secret)] = (principal, exp)
    return principal


def _decode(token: str, secret: str) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "sub", "role", "sid"]}
        )
        principal = Principal(
            user_id=int(claims["sub"]),
            username=str(claims.get("name", "")),
            role=Role(claims["role"]),
            unit_id=claims.get("unit_id"),
            session_id=str(claims["sid"]),
        )
        return principal, float(claims["exp"])
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("token expired") from exc
    except (jwt.InvalidTokenError, ValueError, KeyError) as exc:
        raise Unauthorized("invalid token") from exc


def new_refresh_token() -> tuple[str, bytes]:
    """A refresh token and the hash kept of it (the token itself is never stored)."""
    token = secrets.token_urlsafe(32)
    return token, refresh_hash(token)


def refresh_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
