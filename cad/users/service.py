"""User administration: add, disable/enable, reset a password, change role or unit, end
sessions. A change that alters what someone may do ends their sessions, so it applies
at once on every worker (open consoles are closed and sign in again)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import asyncpg

from cad.audit import service as audit
from cad.audit.service import Client
from cad.auth import repository as auth_repository
from cad.auth import service as auth_service
from cad.auth.passwords import check_password
from cad.auth.security import Role, hash_password
from cad.errors import Conflict, NotFound
from cad.users import repository


@dataclass(frozen=True, slots=True)
class Admin:
    """Who is acting: an admin's principal, or the command line."""

    actor: str
    user_id: int | None
    username: str
    client: Client


async def list_users(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await repository.list_users(conn)]


async def get_user(conn: asyncpg.Connection, username: str) -> dict[str, Any]:
    row = await repository.get_user(conn, username)
    if row is None:
        raise NotFound(f"no user {username!r}")
    return dict(row)


async def add_user(
    conn: asyncpg.Connection,
    by: Admin,
    username: str,
    role: Role,
    password: str,
    unit_callsign: str | None,
) -> dict[str, Any]:
    if await repository.exists(conn, username):
        raise Conflict(f"user {username!r} already exists")
    check_password(password, username)
    await auth_service.add_user(
        conn, username, role.value, password, unit_callsign, must_change_password=True
    )
    await audit.record(
        conn, "user.add", "ok", by.client, username=by.username, user_id=by.user_id,
        target=username, detail={"role": role.value, "unit_callsign": unit_callsign},
    )  # fmt: skip
    return await get_user(conn, username)


async def change_user(
    conn: asyncpg.Connection,
    by: Admin,
    username: str,
    changes: dict[str, Any],
) -> tuple[dict[str, Any], list[str], str]:
    """Apply the given changes; the user, the sessions this ended and why."""
    row = await repository.lock_user(conn, username)
    if row is None:
        raise NotFound(f"no user {username!r}")
    role = Role(changes["role"]) if changes.get("role") is not None else Role(row["role"])
    disabled = changes["disabled"] if changes.get("disabled") is not None else row["disabled"]
    if row["id"] == by.user_id and (disabled or role is not Role.ADMIN):
        raise Conflict("an administrator cannot disable or demote their own account")
    unit_id = row["unit_id"]
    if "unit_callsign" in changes or role.value != row["role"]:
        unit_id = await auth_service.resolve_unit(conn, role, changes.get("unit_callsign"))
    reasons = []
    if disabled and not row["disabled"]:
        reasons.append("account disabled")
    if role.value != row["role"]:
        reasons.append(f"role changed to {role.value}")
    if unit_id != row["unit_id"] and role is Role.UNIT:
        reasons.append("unit changed")
    await repository.update_user(conn, row["id"], disabled=disabled, role=role.value,
                                 unit_id=unit_id)  # fmt: skip
    if changes.get("password") is not None:
        check_password(changes["password"], username)
        digest = await asyncio.to_thread(hash_password, changes["password"])
        await auth_repository.set_password(conn, row["id"], digest, must_change=True)
        reasons.append("password reset")
    ended: list[str] = []
    reason = "; ".join(reasons)
    if reasons:
        ended = await auth_service.end_sessions(
            conn, reason, by.actor, user_id=row["id"], username=username
        )
    detail = {k: v for k, v in changes.items() if k != "password" and v is not None}
    if changes.get("password") is not None:
        detail["password"] = "reset"
    await audit.record(
        conn, "user.change", "ok", by.client, username=by.username, user_id=by.user_id,
        target=username, detail={**detail, "sessions_ended": len(ended)},
    )  # fmt: skip
    return await get_user(conn, username), ended, reason


async def end_all_sessions(conn: asyncpg.Connection, by: Admin, username: str) -> list[str]:
    row = await repository.lock_user(conn, username)
    if row is None:
        raise NotFound(f"no user {username!r}")
    ended = await auth_service.end_sessions(
        conn, "sessions ended by an administrator", by.actor, user_id=row["id"],
        username=username,
    )  # fmt: skip
    await audit.record(
        conn, "user.end_sessions", "ok", by.client, username=by.username, user_id=by.user_id,
        target=username, detail={"sessions_ended": len(ended)},
    )  # fmt: skip
    return ended
