"""One error base, translated to HTTP at the edge only."""

from __future__ import annotations

from typing import Any


class CADError(Exception):
    status_code = 400
    code = "error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(CADError):
    status_code = 404
    code = "not_found"


class Conflict(CADError):
    status_code = 409
    code = "conflict"


class Invalid(CADError):
    """A value that passed schema validation but breaks a domain rule (422 naming the field)."""

    status_code = 422
    code = "invalid"

    def __init__(self, field: str, reason: str, **extra: Any) -> None:
        super().__init__(reason, **extra)
        self.field = field


class Unauthorized(CADError):
    status_code = 401
    code = "unauthorized"


class Forbidden(CADError):
    status_code = 403
    code = "forbidden"


class Unavailable(CADError):
    status_code = 503
    code = "unavailable"


class TooManyRequests(CADError):
    status_code = 429
    code = "rate_limited"
