from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cad.auth.security import Role
from cad.http import Out


class TokenOut(Out):
    # Sent through response_model, so every key is in every answer, defaults included.
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    # Both tokens are null for a console sign-in (client_id=console): they are then in
    # HttpOnly cookies, out of reach of any script on the page.
    access_token: str | None
    token_type: str = "bearer"
    refresh_token: str | None = None
    role: Role
    username: str
    unit_id: int | None = None
    session_id: str
    expires_in: int


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # API clients send their refresh token; consoles send none (it is in a cookie).
    refresh_token: str | None = Field(default=None, min_length=10, max_length=200)
    client_id: str | None = Field(default=None, max_length=40)


class SignOutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str | None = Field(default=None, min_length=10, max_length=200)


class SignOutOut(Out):
    ended: bool


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=200)
    current_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=200)
    client_id: str | None = Field(default=None, max_length=40)
