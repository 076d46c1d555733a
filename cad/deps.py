"""Request-scoped dependencies: typed startup state, the request's transaction, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer

from cad.audit.service import Client
from cad.auth.cookies import ACCESS_COOKIE, SAFE_METHODS, check_csrf
from cad.auth.security import Principal, Role, decode_token
from cad.db.pool import connection, transaction
from cad.errors import CADError, Forbidden, Unauthorized
from cad.state import AppState

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.cad
    return state


# Dependencies are async although they never await: FastAPI runs a plain def in a
# thread, a hop that cost every request more than the work itself.
async def get_state(request: Request) -> AppState:
    return state_of(request)


StateDep = Annotated[AppState, Depends(get_state)]


@asynccontextmanager
async def tx(state: AppState) -> AsyncIterator[asyncpg.Connection]:
    """The one place a command's transaction is opened and committed."""
    async with transaction(state.pool, state.settings.db_acquire_timeout_s) as conn:
        yield conn


@asynccontextmanager
async def one_statement(state: AppState) -> AsyncIterator[asyncpg.Connection]:
    """A connection for a command written as a single statement (its own transaction)."""
    async with connection(state.pool, state.settings.db_acquire_timeout_s) as conn:
        yield conn


async def current_principal(request: Request, token: str | None = Depends(oauth2)) -> Principal:
    """The caller, from a bearer token (API clients) or the session cookie (consoles, which
    must then pass the CSRF check to change anything); refused once its session ended."""
    state = state_of(request)
    if not token:
        token = request.cookies.get(ACCESS_COOKIE)
        if not token:
            raise Unauthorized("not authenticated: send Authorization: Bearer <token>")
        if request.method not in SAFE_METHODS:
            check_csrf(request)
    principal = _verified(state, token)
    request.state.principal = principal
    return principal


def _verified(state: AppState, token: str) -> Principal:
    """The token's caller, unless the token is refused or its session has ended."""
    principal = decode_token(token, state.settings.jwt_secret)
    if state.auth is not None:
        state.auth.guard.check(principal)
    return principal


def bearer_principal(request: Request, roles: tuple[Role, ...]) -> Principal | None:
    """``require(*roles)``'s caller when it came with a bearer token that passes; None for
    anything else (no token, a cookie, a token refused, another role), which the full
    dependency then answers, error included."""
    header = request.headers.get("authorization")
    if not header or not header.startswith("Bearer "):
        return None
    try:
        principal = _verified(state_of(request), header[7:])
    except CADError:
        return None
    if principal.role not in allowed_roles(roles):
        return None
    request.state.principal = principal
    return principal


def client_of(request: Request) -> Client:
    """The caller's address and user agent, as the access log keeps them. The address is
    the peer's (uvicorn rewrites it from X-Forwarded-For only for trusted proxies)."""
    return Client.of(request.client.host if request.client else None,
                     request.headers.get("user-agent"))  # fmt: skip


def allowed_roles(roles: tuple[Role, ...]) -> frozenset[Role]:
    """Who may do what these roles may: they, and an admin."""
    return frozenset(roles) | {Role.ADMIN}


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    allowed = allowed_roles(roles)

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
HANDLER_ROLES = (Role.CALL_HANDLER, Role.SUPERVISOR)
Handler = Annotated[Principal, Depends(require(*HANDLER_ROLES))]
Dispatcher = Annotated[Principal, Depends(require(Role.DISPATCHER, Role.SUPERVISOR))]
Supervisor = Annotated[Principal, Depends(require(Role.SUPERVISOR))]
AdminUser = Annotated[Principal, Depends(require(Role.ADMIN))]
UnitOrDispatcher = Annotated[
    Principal, Depends(require(Role.UNIT, Role.DISPATCHER, Role.SUPERVISOR))
]

# Row ids are bigint: a bigger number in a path is a client error (422), not a database
# one (asyncpg refuses to encode it, which used to surface as a 500).
IdPath = Annotated[int, Path(gt=0, lt=2**62)]
