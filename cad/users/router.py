from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from cad.auth import service as auth_service
from cad.auth.security import Principal
from cad.deps import AdminUser, StateDep, client_of, tx
from cad.http import JSON, returns
from cad.users import service
from cad.users.schemas import SessionsEndedOut, UnlockOut, UserIn, UserOut, UserPatch, UsersOut

router = APIRouter(prefix="/api/users", tags=["users"])

UsernamePath = Annotated[str, Path(min_length=1, max_length=200)]


def _admin(principal: Principal, request: Request) -> service.Admin:
    return service.Admin(principal.actor, principal.user_id, principal.username, client_of(request))


@router.get("", response_class=JSON, responses=returns(UsersOut))
async def list_users(state: StateDep, _: AdminUser) -> Any:
    """Every account, with its open sessions and any sign-in lockout."""
    async with tx(state) as conn:
        return {"users": await service.list_users(conn)}


@router.post("", status_code=201, response_class=JSON, responses=returns(UserOut, 201))
async def add_user(body: UserIn, request: Request, state: StateDep, principal: AdminUser) -> Any:
    """Add an account with a temporary password, to be changed at first sign-in
    (at least 12 characters, not the username, not a common password)."""
    async with tx(state) as conn:
        return await service.add_user(
            conn, _admin(principal, request), body.username, body.role, body.password,
            body.unit_callsign,
        )  # fmt: skip


@router.get("/{username}", response_class=JSON, responses=returns(UserOut))
async def get_user(username: UsernamePath, state: StateDep, _: AdminUser) -> Any:
    async with tx(state) as conn:
        return await service.get_user(conn, username)


@router.patch("/{username}", response_class=JSON, responses=returns(UserOut))
async def change_user(
    username: UsernamePath, body: UserPatch, request: Request, state: StateDep,
    principal: AdminUser,
) -> Any:  # fmt: skip
    """Disable or enable, reset the password (changed at next sign-in), change the role or
    the unit. Anything but enabling ends the user's sessions on every worker at once."""
    async with tx(state) as conn:
        user, ended, reason = await service.change_user(
            conn, _admin(principal, request), username, body.model_dump(exclude_unset=True)
        )
    assert state.auth is not None
    state.auth.guard.end(ended, reason)
    return user


@router.post("/{username}/end-sessions", response_class=JSON, responses=returns(SessionsEndedOut))
async def end_sessions(
    username: UsernamePath, request: Request, state: StateDep, principal: AdminUser
) -> Any:
    """Sign the user out everywhere: every session ends, open consoles close."""
    async with tx(state) as conn:
        ended = await service.end_all_sessions(conn, _admin(principal, request), username)
    assert state.auth is not None
    state.auth.guard.end(ended, "sessions ended by an administrator")
    return {"ended": len(ended)}


@router.post("/{username}/unlock", response_class=JSON, responses=returns(UnlockOut))
async def unlock(
    username: UsernamePath, request: Request, state: StateDep, principal: AdminUser
) -> Any:
    """End a sign-in lockout now (for an account or any name that was tried)."""
    assert state.auth is not None
    async with tx(state) as conn:
        was_locked = await auth_service.unlock(
            conn, state.auth.throttle, username, principal.actor, client_of(request)
        )
    return {"username": username, "was_locked": was_locked}
