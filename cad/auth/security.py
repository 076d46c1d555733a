"""Password hashing (argon2) and short-lived JWTs (PyJWT)."""

from __future__ import annotations

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
        "iat": now,
        "exp": now + timedelta(seconds=ttl_s),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def decode_token(token: str, secret: str) -> Principal:
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "sub", "role"]}
        )
        return Principal(
            user_id=int(claims["sub"]),
            username=str(claims.get("name", "")),
            role=Role(claims["role"]),
            unit_id=claims.get("unit_id"),
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("token expired") from exc
    except (jwt.InvalidTokenError, ValueError, KeyError) as exc:
        raise Unauthorized("invalid token") from exc
