from __future__ import annotations

from datetime import datetime
from typing import Any

from cad.http import Out


class AccessEntryOut(Out):
    id: int
    at: datetime
    # signin, signout, lockout, lockout_end, unlock, refresh_reuse, password_change,
    # user.add, user.change, user.end_sessions, export.read, eido.read
    action: str
    outcome: str
    username: str | None
    user_id: int | None
    address: str | None
    user_agent: str | None
    target: str | None
    detail: dict[str, Any]


class AccessLogOut(Out):
    entries: list[AccessEntryOut]
    # Pass as before_id for the next (older) page; null at the end of the record.
    next_before_id: int | None
