from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from cad.auth import service
from cad.auth.cookies import (
    ACCESS_COOKIE,
    REFRESH_COOKIE,
    check_csrf,
    clear_session_cookies,
    is_secure,
    same_origin,
    set_session_cookies,
)
from cad.auth.schemas import PasswordChangeIn, RefreshIn, SignOutIn, SignOutOut, TokenOut
from cad.auth.security import Principal, decode_token
from cad.deps import StateDep, client_of, tx
from cad.errors import CADError, Forbidden, Unauthorized
from cad.state import AppState

router = APIRouter(prefix="/api/auth", tags=["auth"])

CONSOLE = "console"


def _answer(
    request: Request, response: Response, state: AppState, signed: service.SignedIn, console: bool
) -> TokenOut:
    settings = state.settings
    if console:
        set_session_cookies(
            response,
            signed.access_token,
            signed.refresh_token,
            settings.jwt_ttl_s,
            settings.session_ttl_s,
            is_secure(request, settings.cookie_secure),
        )
    p = signed.principal
    return TokenOut(
        access_token=None if console else signed.access_token,
        refresh_token=None if console else signed.refresh_token,
        role=p.role,
        username=p.username,
        unit_id=p.unit_id,
        session_id=p.session_id,
        expires_in=signed.expires_in,
    )


@router.post("/token", response_model=TokenOut)
async def token(
    request: Request,
    response: Response,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    state: StateDep,
) -> TokenOut:
    """Sign in (OAuth2 password flow): a new session, with a short-lived access token and
    a refresh token. ``client_id=console`` puts both in HttpOnly cookies instead of the
    body. Failed attempts are throttled per name and per address (429 + Retry-After)."""
    auth = state.auth
    assert auth is not None
    _console_from_here(request, form.client_id)
    signed = await service.sign_in(auth, form.username[:200], form.password[:200],
                                   client_of(request))  # fmt: skip
    return _answer(request, response, state, signed, form.client_id == CONSOLE)


@router.post("/refresh", response_model=TokenOut)
async def refresh(
    request: Request,
    response: Response,
    state: StateDep,
    body: Annotated[RefreshIn | None, Body()] = None,
) -> TokenOut:
    """A new access token and refresh token for a refresh token, which is spent: sending
    a spent one again ends the whole session (it was copied). Consoles send none: theirs
    is in a cookie, and the request must pass the CSRF check."""
    auth = state.auth
    assert auth is not None
    presented = body.refresh_token if body else None
    console = presented is None
    if console:
        presented = request.cookies.get(REFRESH_COOKIE)
        if not presented:
            raise Unauthorized("no refresh token: sign in again", reason="session_ended")
        check_csrf(request)
    assert presented is not None
    async with tx(state) as conn:
        outcome = await service.refresh(conn, auth, presented, client_of(request))
    if isinstance(outcome, service.Refused):
        auth.guard.end(outcome.ended, "refresh token reused")
        raise outcome.error
    return _answer(request, response, state, outcome, console)


@router.post("/signout", response_model=SignOutOut)
async def signout(
    request: Request,
    response: Response,
    state: StateDep,
    body: Annotated[SignOutIn | None, Body()] = None,
) -> SignOutOut:
    """End this session: its access and refresh tokens stop working on every worker."""
    auth = state.auth
    assert auth is not None
    principal = _optional_principal(request, state)
    presented = body.refresh_token if body else None
    if principal is None and presented is None:
        presented = request.cookies.get(REFRESH_COOKIE)
    if request.cookies.get(ACCESS_COOKIE) or request.cookies.get(REFRESH_COOKIE):
        check_csrf(request)
    async with tx(state) as conn:
        ended = await service.sign_out(
            conn, auth, client_of(request), principal=principal, refresh_token=presented
        )
    auth.guard.end(ended, "signed out")
    # Only a request that brought the session (and so passed the CSRF check) clears it:
    # a cross-site form brings no cookie, yet a navigation's answer could delete them.
    if request.cookies.get(ACCESS_COOKIE) or request.cookies.get(REFRESH_COOKIE):
        clear_session_cookies(response, is_secure(request, state.settings.cookie_secure))
    return SignOutOut(ended=bool(ended))


def _console_from_here(request: Request, client_id: str | None) -> None:
    """A console sign-in sets the session cookies: only a page of this origin may ask for
    that, or a site elsewhere could sign the browser in as someone else (login CSRF)."""
    if client_id == CONSOLE and not same_origin(request):
        raise Forbidden("a console sign-in must come from this origin", reason="csrf")


def _optional_principal(request: Request, state: AppState) -> Principal | None:
    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else None
    token = token or request.cookies.get(ACCESS_COOKIE)
    if not token:
        return None
    try:
        return decode_token(token, state.settings.jwt_secret)
    except CADError:
        return None


@router.post("/password", response_model=TokenOut)
async def change_password(
    request: Request, response: Response, body: PasswordChangeIn, state: StateDep
) -> TokenOut:
    """Change one's own password (required after an administrator's reset), proving the
    current one: throttled like a sign-in. Ends the user's other sessions and signs in."""
    auth = state.auth
    assert auth is not None
    _console_from_here(request, body.client_id)
    signed = await service.change_password(
        auth, body.username, body.current_password, body.new_password, client_of(request)
    )
    return _answer(request, response, state, signed, body.client_id == CONSOLE)
