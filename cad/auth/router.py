from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from cad.auth import service
from cad.auth.schemas import TokenOut
from cad.deps import StateDep, tx

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/token", response_model=TokenOut)
async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], state: StateDep) -> TokenOut:
    """OAuth2 password flow: a short-lived bearer token carrying the role (and unit)."""
    settings = state.settings
    async with tx(state) as conn:
        principal, access_token = await service.authenticate(
            conn, form.username[:200], form.password[:200], settings.jwt_secret, settings.jwt_ttl_s
        )
    return TokenOut(
        access_token=access_token,
        role=principal.role,
        username=principal.username,
        unit_id=principal.unit_id,
        expires_in=settings.jwt_ttl_s,
    )
