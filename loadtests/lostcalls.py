"""The lost-call check: every call acknowledged with 201 is in PostgreSQL, none twice.

Load generators append one JSON line per 201 ({"key", "call_id", ...}) and tag each
call's description with ``[lt:<Idempotency-Key>]``, so the database itself can say
whether one key ever produced two calls or two incidents (a retry that was not
recognised as one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

TAG_RE = r"\[lt:([0-9a-zA-Z_-]+)\]"


@dataclass
class LostCallReport:
    acknowledged: int = 0
    distinct_keys: int = 0
    missing: list[int] = field(default_factory=list)  # acked call ids not in the database
    acked_twice: list[str] = field(default_factory=list)  # one key acked with two call ids
    duplicate_calls: dict[str, int] = field(default_factory=dict)  # key -> calls in the db
    duplicate_incidents: dict[str, int] = field(default_factory=dict)  # key -> incidents
    tagged_calls_in_db: int = 0

    @property
    def ok(self) -> bool:
        return not (
            self.missing or self.acked_twice or self.duplicate_calls or self.duplicate_incidents
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "acknowledged": self.acknowledged,
            "distinct_keys": self.distinct_keys,
            "tagged_calls_in_db": self.tagged_calls_in_db,
            "missing": self.missing[:50],
            "missing_count": len(self.missing),
            "acked_twice": self.acked_twice[:50],
            "duplicate_calls": dict(list(self.duplicate_calls.items())[:50]),
            "duplicate_incidents": dict(list(self.duplicate_incidents.items())[:50]),
        }


def read_acks(path: Path) -> list[dict[str, Any]]:
    acks = []
    if not path.exists():
        return acks
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            acks.append(json.loads(line))
        except json.JSONDecodeError:
            raise ValueError(f"{path}: line {lineno}: not JSON") from None
    return acks


async def check(conn: asyncpg.Connection, acks: list[dict[str, Any]]) -> LostCallReport:
    report = LostCallReport(acknowledged=len(acks))
    by_key: dict[str, set[int]] = {}
    for ack in acks:
        by_key.setdefault(str(ack["key"]), set()).add(int(ack["call_id"]))
    report.distinct_keys = len(by_key)
    report.acked_twice = sorted(k for k, ids in by_key.items() if len(ids) > 1)
    ids = sorted({int(a["call_id"]) for a in acks})
    present = {
        r["id"] for r in await conn.fetch("SELECT id FROM calls WHERE id = ANY($1::bigint[])", ids)
    }
    report.missing = [i for i in ids if i not in present]
    rows = await conn.fetch(
        """
        SELECT substring(description from $1) AS key, count(*) AS n
        FROM calls WHERE description ~ $1 GROUP BY 1
        """,
        TAG_RE,
    )
    report.tagged_calls_in_db = sum(r["n"] for r in rows)
    report.duplicate_calls = {r["key"]: r["n"] for r in rows if r["n"] > 1}
    rows = await conn.fetch(
        """
        SELECT substring(description from $1) AS key, count(*) AS n
        FROM incidents WHERE description ~ $1 GROUP BY 1 HAVING count(*) > 1
        """,
        TAG_RE,
    )
    report.duplicate_incidents = {r["key"]: r["n"] for r in rows}
    return report
