from __future__ import annotations

from pydantic import BaseModel

from cad.auth.security import Role


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    role: Role
    username: str
    unit_id: int | None = None
    expires_in: int
