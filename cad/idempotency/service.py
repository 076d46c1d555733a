"""Idempotency-Key: the first answer to a command, returned again for every retry."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from fastapi.responses import Response

from cad.errors import Invalid
from cad.http import JSON
from cad.idempotency import repository as repo


@dataclass(frozen=True, slots=True)
class Replay:
    status_code: int
    content: bytes


def request_hash(body: Any) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_key(key: str) -> str:
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise Invalid("Idempotency-Key", "must be 1 to 200 printable characters")
    return key


@dataclass(frozen=True, slots=True)
class Claim:
    """What a command under an Idempotency-Key writes beside its own rows, in the same
    statement, so the answer is kept exactly when the command commits."""

    user_id: int
    key: str
    route: str
    request_hash: str


def claim_for(user_id: int, key: str | None, route: str, body: Any) -> Claim | None:
    if key is None:
        return None
    return Claim(user_id, check_key(key), route, request_hash(body))


async def begin(
    conn: asyncpg.Connection, user_id: int, key: str, route: str, body_hash: str
) -> Replay | None:
    if await repo.claim(conn, user_id, key, route, body_hash):
        return None
    return await stored_answer(conn, Claim(user_id, key, route, body_hash))


async def stored_answer(conn: asyncpg.Connection, claim: Claim) -> Replay:
    """The first answer under a key already taken, or a 422 when the key was used for a
    different request."""
    row = await repo.stored(conn, claim.user_id, claim.key)
    assert row is not None
    if row["route"] != claim.route or row["request_hash"] != claim.request_hash:
        raise Invalid(
            "Idempotency-Key",
            "this key was already used for a different request; use a new key",
        )
    stored = row["response"]
    if isinstance(stored, str):
        return Replay(row["status_code"], stored.encode())
    # A row saved before answers were kept verbatim: the same content, keys re-ordered.
    return Replay(row["status_code"], orjson.dumps(stored, option=orjson.OPT_NON_STR_KEYS))


def replay_response(replay: Replay) -> Response:
    return Response(
        replay.content,
        status_code=replay.status_code,
        media_type="application/json",
        headers={"Idempotent-Replay": "true"},
    )


async def finish(
    conn: asyncpg.Connection, user_id: int, key: str, status_code: int, content: bytes
) -> None:
    """Keep the answer exactly as sent, as a JSON string inside the jsonb column: jsonb
    re-orders object keys, and a retry must get the first answer byte for byte."""
    await repo.save(conn, user_id, key, status_code, content.decode())


async def once(
    conn: asyncpg.Connection,
    user_id: int,
    key: str | None,
    route: str,
    body: Any,
    command: Callable[[], Awaitable[tuple[int, Any]]],
) -> Response:
    """Run a command at most once per Idempotency-Key (in the caller's transaction): a
    retry gets the first answer, byte for byte. A refused command (an error) keeps no
    answer, so its retry is decided afresh."""
    if key is not None:
        check_key(key)
        replay = await begin(conn, user_id, key, route, request_hash(body))
        if replay is not None:
            return replay_response(replay)
    status_code, result = await command()
    response = JSON(result, status_code=status_code)
    if key is not None:
        await finish(conn, user_id, key, status_code, bytes(response.body))
    return response
