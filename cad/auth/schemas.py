from __future__ import annotations

from pydantic import ConfigDict

from cad.auth.security import Role
from cad.http import Out


class TokenOut(Out):
    # Sent through response_model, so every key is in every answer, defaults included.
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    access_token: str
    token_type: str = "bearer"
    role: Role
    username: str
    unit_id: int | None = None
    expires_in: int
