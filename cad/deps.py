"""Request-scoped dependencies: typed startup state, the request's transaction, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer

from cad.auth.security import Principal, Role, decode_token
from cad.db.pool import transaction
from cad.errors import Forbidden, Unauthorized
from cad.state import AppState

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.cad
    return state


StateDep = Annotated[AppState, Depends(get_state)]


@asynccontextmanager
async def tx(state: AppState) -> AsyncIterator[asyncpg.Connection]:
    """The one place a command's transaction is opened and committed."""
    async with transaction(state.pool, state.settings.db_acquire_timeout_s) as conn:
        yield conn


def current_principal(request: Request, token: str | None = Depends(oauth2)) -> Principal:
    if not token:
        raise Unauthorized("not authenticated: send Authorization: Bearer <token>")
    principal = decode_token(token, get_state(request).settings.jwt_secret)
    request.state.principal = principal
    return principal


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    allowed = frozenset(roles) | {Role.ADMIN}

    async def checker(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(
                f"role {principal.role} may not do this; allowed: {sorted(r.value for r in allowed)}"
            )
        return principal

    return checker


STAFF_ROLES = (Role.CALL_HANDLER, Role.DISPATCHER, Role.SUPERVISOR)
Staff = Annotated[Principal, Depends(require(*STAFF_ROLES))]
AnyUser = Annotated[Principal, Depends(require(*STAFF_ROLES, Role.UNIT))]
Handler = Annotated[Principal, Depends(require(Role.CALL_HANDLER, Role.SUPERVISOR))]
Dispatcher = Annotated[Principal, Depends(require(Role.DISPATCHER, Role.SUPERVISOR))]
Supervisor = Annotated[Principal, Depends(require(Role.SUPERVISOR))]
UnitOrDispatcher = Annotated[
    Principal, Depends(require(Role.UNIT, Role.DISPATCHER, Role.SUPERVISOR))
]

# Row ids are bigint: a bigger number in a path is a client error (422), not a database
# one (asyncpg refuses to encode it, which used to surface as a 500).
IdPath = Annotated[int, Path(gt=0, lt=2**62)]
