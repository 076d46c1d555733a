"""The access audit: who signed in (or failed to), from where, and who read what.

Written in the caller's transaction, so an audited action and its record commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from cad.audit import repository
from cad.auth.security import Principal


@dataclass(frozen=True, slots=True)
class Client:
    """Where a request came from, as the audit records it."""

    address: str | None
    user_agent: str | None

    @classmethod
    def of(cls, address: str | None, user_agent: str | None) -> Client:
        return cls(address, (user_agent or "")[:300] or None)


CLI = Client("cli", None)


async def record(
    conn: asyncpg.Connection,
    action: str,
    outcome: str,
    client: Client,
    *,
    username: str | None = None,
    user_id: int | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await repository.insert(
        conn,
        action,
        outcome,
        username=username[:200] if username else username,
        user_id=user_id,
        address=client.address,
        user_agent=client.user_agent,
        target=target,
        detail=detail or {},
    )


async def record_read(
    conn: asyncpg.Connection, action: str, principal: Principal, client: Client, incident_id: int
) -> None:
    """A read of an incident's full record (export, EIDO) by whom."""
    await record(
        conn, action, "ok", client, username=principal.username, user_id=principal.user_id,
        target=str(incident_id), detail={"role": str(principal.role)},
    )  # fmt: skip


async def search(
    conn: asyncpg.Connection,
    *,
    username: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    rows = await repository.search(
        conn,
        username=username,
        action=action,
        since=since,
        until=until,
        before_id=before_id,
        limit=limit,
    )
    return [dict(r) for r in rows]
