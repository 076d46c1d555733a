from __future__ import annotations

import asyncio

import asyncpg
import structlog

from cad.auth import repository
from cad.auth.security import Principal, Role, hash_password, issue_token, verify_password
from cad.errors import Invalid, Unauthorized

log = structlog.get_logger(__name__)


async def authenticate(
    conn: asyncpg.Connection, username: str, password: str, secret: str, ttl_s: int
) -> tuple[Principal, str]:
    row = await repository.get_by_username(conn, username)
    # argon2 is deliberately slow: keep it off the event loop.
    ok = await asyncio.to_thread(verify_password, row["password_hash"] if row else None, password)
    if row is None or not ok or row["disabled"]:
        log.info("auth.failed")
        raise Unauthorized("incorrect username or password")
    principal = Principal(row["id"], row["username"], Role(row["role"]), row["unit_id"])
    log.info("auth.ok", user_id=principal.user_id, role=str(principal.role))
    return principal, issue_token(principal, secret, ttl_s)


async def add_user(
    conn: asyncpg.Connection,
    username: str,
    role: str,
    password: str,
    unit_callsign: str | None = None,
) -> int:
    try:
        role_value = Role(role)
    except ValueError as exc:
        raise Invalid("role", f"unknown role {role!r}; one of {[r.value for r in Role]}") from exc
    if len(password) < 8:
        raise Invalid("password", "at least 8 characters")
    unit_id = None
    if role_value is Role.UNIT:
        if not unit_callsign:
            raise Invalid("unit", "a unit user must be bound to a unit callsign")
        unit_id = await repository.unit_id_for_callsign(conn, unit_callsign)
        if unit_id is None:
            raise Invalid("unit", f"no unit with callsign {unit_callsign!r}")
    elif unit_callsign:
        raise Invalid("unit", "only unit users are bound to a unit")
    return await repository.upsert_user(
        conn, username, hash_password(password), role_value.value, unit_id
    )
