from __future__ import annotations

from typing import Literal

from cad.http import Out


class LiveOut(Out):
    status: Literal["ok"]


class ReadyOut(Out):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]
    leader: bool
    hub: str | None
    units_indexed: int
