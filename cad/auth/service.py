"""Sign-in, sessions and their end, lockout, and the account rules.

A session is a row in PostgreSQL; its access tokens (short JWTs naming it) are checked
without a read, its refresh tokens rotate on every use (a spent one presented again
ends the session: it was copied). Ending sessions appends ``auth.sessions_ended``,
which every worker's guard applies within about a second (see guard.py).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import asyncpg
import structlog

from cad.audit import service as audit
from cad.audit.service import Client
from cad.auth import repository
from cad.auth.guard import SESSIONS_ENDED, SessionGuard
from cad.auth.passwords import check_password
from cad.auth.security import (
    Principal,
    Role,
    hash_password,
    issue_token,
    new_refresh_token,
    refresh_hash,
    verify_password,
)
from cad.auth.throttle import Gate, SigninThrottle, name_key
from cad.config import Settings
from cad.errors import Forbidden, Invalid, Unauthorized
from cad.events.writer import append_event

log = structlog.get_logger(__name__)

WRONG = "incorrect username or password"
SYSTEM_ACTOR = "system:signin"


@dataclass(frozen=True, slots=True)
class Auth:
    """What sign-in needs of the worker: settings, the pool, throttle and guard."""

    settings: Settings
    pool: asyncpg.Pool
    throttle: SigninThrottle
    guard: SessionGuard


@dataclass(frozen=True, slots=True)
class SignedIn:
    principal: Principal
    access_token: str
    refresh_token: str
    expires_in: int


def _principal(row: asyncpg.Record, session_id: str) -> Principal:
    return Principal(row["id"], row["username"], Role(row["role"]), row["unit_id"], session_id)


async def sign_in(auth: Auth, username: str, password: str, client: Client) -> SignedIn:
    """Check a password through the throttle; a new session on success."""
    gate = await auth.throttle.enter(auth.pool, username, client.address)
    refusal: tuple[str, str] | None = None
    signed: SignedIn | None = None
    try:
        async with auth.pool.acquire() as conn:
            row = await repository.get_by_username(conn, username)
        # argon2 is deliberately slow: keep it off the event loop.
        ok = await asyncio.to_thread(
            verify_password, row["password_hash"] if row else None, password
        )
        ok = ok and row is not None and not row["disabled"]
        locked_now: int | None = None
        async with auth.throttle.transaction(gate) as conn:
            if not ok:
                reason = "disabled" if row and row["disabled"] else "wrong"
                locked_now = await _failed(conn, auth, gate, client, username, row, reason)
            else:
                assert row is not None
                await auth.throttle.leave(gate, failed=False)
                refusal = _refusal(auth.settings, row)
                if refusal is not None:
                    await audit.record(
                        conn, "signin", "refused", client, username=username,
                        user_id=row["id"], detail={"reason": refusal[0]},
                    )  # fmt: skip
                else:
                    await audit.record(
                        conn, "signin", "ok", client, username=username, user_id=row["id"]
                    )
                    signed = await _new_session(conn, auth, row, client)
    finally:
        await auth.throttle.close(gate)
    if not ok:
        log.info("auth.failed", locked=locked_now is not None)
        raise Unauthorized(WRONG)
    if refusal is not None:
        raise Forbidden(refusal[1], reason=refusal[0])
    assert signed is not None
    log.info("auth.ok", user_id=signed.principal.user_id, role=str(signed.principal.role))
    return signed


def _refusal(settings: Settings, row: asyncpg.Record) -> tuple[str, str] | None:
    if row["demo"] and settings.env == "production":
        return "demo_account", "demo accounts are refused when CAD_ENV=production"
    if row["must_change_password"]:
        return (
            "password_change_required",
            "this password was set by an administrator: choose a new one to sign in "
            "(POST /api/auth/password)",
        )
    return None


async def _failed(
    conn: asyncpg.Connection,
    auth: Auth,
    gate: Gate,
    client: Client,
    username: str,
    row: asyncpg.Record | None,
    reason: str,
    via: str | None = None,
) -> int | None:
    """Record a failed password check and count it; lock the name if this one reached the
    limit (the failures then, else None)."""
    detail = {"reason": reason, **({"via": via} if via else {})}
    await audit.record(
        conn, "signin", "failure", client, username=username,
        user_id=row["id"] if row else None, detail=detail,
    )  # fmt: skip
    if gate.mode == "redis":
        locked = await auth.throttle.leave(gate, failed=True)
    else:
        # The failure just written is in the count: it is read in the gate's transaction.
        failures = await auth.throttle.failures_now(gate)
        locked = failures if failures >= auth.throttle.max_failures else None
    if locked is not None:
        await _lock(conn, auth, gate.name, locked, client)
    return locked


async def _lock(
    conn: asyncpg.Connection, auth: Auth, name: str, failures: int, client: Client
) -> None:
    until = await repository.lock(conn, name, auth.settings.signin_lockout_s, failures)
    await audit.record(
        conn, "lockout", "ok", client, username=name, target=name,
        detail={"failures": failures, "until": until.isoformat()},
    )  # fmt: skip
    await append_event(
        conn, "auth.locked", SYSTEM_ACTOR,
        data={"name": name, "until": until.isoformat(), "failures": failures},
    )  # fmt: skip
    log.warning("auth.locked", failures=failures)


async def _new_session(
    conn: asyncpg.Connection, auth: Auth, row: asyncpg.Record, client: Client
) -> SignedIn:
    session_id = uuid.uuid4()
    await repository.create_session(
        conn, session_id, row["id"], auth.settings.session_ttl_s, client.address, client.user_agent
    )
    return await _tokens(conn, auth, _principal(row, str(session_id)), session_id)


async def _tokens(
    conn: asyncpg.Connection, auth: Auth, principal: Principal, session_id: uuid.UUID
) -> SignedIn:
    refresh, digest = new_refresh_token()
    await repository.add_refresh_token(conn, digest, session_id)
    ttl = auth.settings.jwt_ttl_s
    return SignedIn(principal, issue_token(principal, auth.settings.jwt_secret, ttl), refresh, ttl)


@dataclass(frozen=True, slots=True)
class Refused:
    """A refresh refused. Returned, not raised, so what it did (ending the session of a
    copied token) commits; the caller raises ``error`` after the commit."""

    error: Unauthorized
    ended: list[str]


async def refresh(
    conn: asyncpg.Connection, auth: Auth, token: str, client: Client
) -> SignedIn | Refused:
    """Spend a refresh token for a new pair; the role and unit are read afresh."""
    found = await repository.spend_refresh_token(conn, refresh_hash(token))
    if found is None:
        return Refused(
            Unauthorized("unknown refresh token; sign in again", reason="session_ended"), []
        )
    session_id: uuid.UUID = found["session_id"]
    if found["reused"]:
        ended = await end_sessions(
            conn, "refresh token reused", SYSTEM_ACTOR,
            session_id=session_id, user_id=found["user_id"],
        )  # fmt: skip
        await audit.record(
            conn, "refresh_reuse", "refused", client, user_id=found["user_id"],
            detail={"session_id": str(session_id), "ended": bool(ended)},
        )  # fmt: skip
        log.warning("auth.refresh_reused", user_id=found["user_id"])
        return Refused(
            Unauthorized(
                "this refresh token was already used: the session has been ended",
                reason="session_ended",
            ),
            ended,
        )
    if found["ended_at"] is not None or found["expired"]:
        reason = found["ended_reason"] or "expired"
        return Refused(
            Unauthorized(f"session ended: {reason}; sign in again", reason="session_ended"), []
        )
    row = await repository.get_by_id(conn, found["user_id"])
    if row is None or row["disabled"]:
        return Refused(Unauthorized("account disabled", reason="session_ended"), [])
    await repository.touch_session(conn, session_id)
    return await _tokens(conn, auth, _principal(row, str(session_id)), session_id)


async def sign_out(
    conn: asyncpg.Connection,
    auth: Auth,
    client: Client,
    *,
    principal: Principal | None = None,
    refresh_token: str | None = None,
) -> list[str]:
    """End the caller's session (named by its access or refresh token)."""
    session_id: uuid.UUID | None = None
    user_id: int | None = None
    if principal is not None:
        session_id, user_id = uuid.UUID(principal.session_id), principal.user_id
    elif refresh_token:
        found = await repository.spend_refresh_token(conn, refresh_hash(refresh_token))
        if found is not None:
            session_id, user_id = found["session_id"], found["user_id"]
    if session_id is None:
        return []
    actor = principal.actor if principal else SYSTEM_ACTOR
    ended = await end_sessions(conn, "signed out", actor, session_id=session_id, user_id=user_id)
    await audit.record(
        conn, "signout", "ok", client, username=principal.username if principal else None,
        user_id=user_id, detail={"session_id": str(session_id)},
    )  # fmt: skip
    return ended


async def end_sessions(
    conn: asyncpg.Connection,
    reason: str,
    actor: str,
    *,
    user_id: int | None,
    session_id: uuid.UUID | None = None,
    username: str | None = None,
) -> list[str]:
    """End one session or all of a user's, in the caller's transaction; every worker
    refuses their tokens once it commits (callers also tell their own worker's guard
    after the commit, so the caller's next request is refused, not just within a second)."""
    ended = await repository.end_sessions(conn, reason, session_id=session_id, user_id=user_id)
    if ended:
        await append_event(
            conn, SESSIONS_ENDED, actor,
            data={"user_id": user_id, "username": username, "session_ids": ended,
                  "reason": reason},
        )  # fmt: skip
    return ended


async def change_password(
    auth: Auth, username: str, current: str, new: str, client: Client
) -> SignedIn:
    """The user's own change (required after an administrator's reset): the current
    password is checked through the throttle like a sign-in; other sessions end."""
    check_password(new, username, "new_password")
    if new == current:
        raise Invalid("new_password", "must differ from the current password")
    gate = await auth.throttle.enter(auth.pool, username, client.address)
    try:
        async with auth.pool.acquire() as conn:
            row = await repository.get_by_username(conn, username)
        ok = await asyncio.to_thread(
            verify_password, row["password_hash"] if row else None, current
        )
        ok = ok and row is not None and not row["disabled"]
        new_hash = await asyncio.to_thread(hash_password, new) if ok else ""
        signed: SignedIn | None = None
        async with auth.throttle.transaction(gate) as conn:
            if not ok:
                await _failed(conn, auth, gate, client, username, row, "wrong", "password_change")
            else:
                assert row is not None
                await auth.throttle.leave(gate, failed=False)
                if row["demo"] and auth.settings.env == "production":
                    raise Forbidden("demo accounts are refused when CAD_ENV=production")
                await repository.set_password(conn, row["id"], new_hash, must_change=False)
                await end_sessions(
                    conn, "password changed", f"{row['role']}:{row['username']}",
                    user_id=row["id"], username=row["username"],
                )  # fmt: skip
                await audit.record(
                    conn, "password_change", "ok", client, username=username, user_id=row["id"]
                )
                await audit.record(conn, "signin", "ok", client, username=username,
                                   user_id=row["id"], detail={"via": "password_change"})  # fmt: skip
                signed = await _new_session(conn, auth, row, client)
    finally:
        await auth.throttle.close(gate)
    if not ok:
        raise Unauthorized(WRONG)
    assert signed is not None
    return signed


async def unlock(
    conn: asyncpg.Connection, throttle: SigninThrottle | None, username: str, actor: str,
    client: Client,
) -> bool:  # fmt: skip
    """An administrator's unlock of a sign-in name (an account or not)."""
    name = name_key(username)
    was_locked = await repository.unlock(conn, name)
    await audit.record(
        conn, "unlock", "ok", client, username=name, target=name,
        detail={"by": actor, "was_locked": was_locked},
    )  # fmt: skip
    if was_locked:
        await append_event(
            conn, "auth.unlocked", actor, data={"name": name, "reason": "unlocked by admin"}
        )
    if throttle is not None:
        await throttle.forget(name)
    return was_locked


async def end_expired_lockouts(conn: asyncpg.Connection, throttle: SigninThrottle | None) -> int:
    """The leader's timer: a lockout whose time is up ends, as an event."""
    names = await repository.take_expired_locks(conn)
    for name in names:
        await audit.record(conn, "lockout_end", "ok", Client("system", None), username=name,
                           target=name, detail={"reason": "expired"})  # fmt: skip
        await append_event(conn, "auth.unlocked", SYSTEM_ACTOR,
                           data={"name": name, "reason": "lockout expired"})  # fmt: skip
        if throttle is not None:
            await throttle.forget(name)
    return len(names)


async def add_user(
    conn: asyncpg.Connection,
    username: str,
    role: str,
    password: str,
    unit_callsign: str | None = None,
    *,
    demo: bool = False,
    must_change_password: bool = False,
) -> int:
    """Add (or replace) an account. Demo accounts keep their short, published passwords:
    they exist for `make run` and tests, and are refused in production."""
    try:
        role_value = Role(role)
    except ValueError as exc:
        raise Invalid("role", f"unknown role {role!r}; one of {[r.value for r in Role]}") from exc
    if not demo:
        check_password(password, username)
    unit_id = await resolve_unit(conn, role_value, unit_callsign)
    password_hash = await asyncio.to_thread(hash_password, password)
    return await repository.upsert_user(
        conn, username, password_hash, role_value.value, unit_id,
        demo=demo, must_change_password=must_change_password,
    )  # fmt: skip


async def resolve_unit(conn: asyncpg.Connection, role: Role, callsign: str | None) -> int | None:
    if role is Role.UNIT:
        if not callsign:
            raise Invalid("unit_callsign", "a unit user must be bound to a unit callsign")
        unit_id = await repository.unit_id_for_callsign(conn, callsign)
        if unit_id is None:
            raise Invalid("unit_callsign", f"no unit with callsign {callsign!r}")
        return unit_id
    if callsign:
        raise Invalid("unit_callsign", "only unit users are bound to a unit")
    return None
