"""Building a statement from fixed fragments for the filters a request gives."""

from __future__ import annotations

from typing import Any


class Params:
    """Collects values and hands out their `$n` placeholders, so a statement assembled
    from fixed fragments still sends every value as a parameter, never as text."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"
