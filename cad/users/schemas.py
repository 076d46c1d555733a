from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from cad.auth.security import Role
from cad.http import Out

USERNAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class UserOut(Out):
    id: int
    username: str
    role: Role
    unit_id: int | None
    unit_callsign: str | None
    disabled: bool
    must_change_password: bool
    demo: bool
    created_at: datetime
    updated_at: datetime
    open_sessions: int
    # Set while sign-in for this name is locked after repeated failures.
    locked_until: datetime | None


class UsersOut(Out):
    users: list[UserOut]


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME, description="letters, digits, . _ -; up to 64")
    role: Role
    # A temporary password: the user must choose their own at first sign-in.
    password: str = Field(min_length=1, max_length=200)
    unit_callsign: str | None = Field(default=None, min_length=1, max_length=20)


class UserPatch(BaseModel):
    """Each field given is a change; several may go together (role and unit do)."""

    model_config = ConfigDict(extra="forbid")

    disabled: bool | None = None
    role: Role | None = None
    unit_callsign: str | None = Field(default=None, min_length=1, max_length=20)
    # A reset: the user must change it at next sign-in.
    password: str | None = Field(default=None, min_length=1, max_length=200)


class SessionsEndedOut(Out):
    ended: int


class UnlockOut(Out):
    username: str
    was_locked: bool
