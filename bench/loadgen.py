"""A small, fast HTTP/1.1 load generator: raw asyncio keep-alive connections, N processes.

httpx costs more CPU per request than the servers under test, and on a 2-core machine
the client's CPU is taken from the server; a bare client keeps the measurement about the
server. Both our API and the floor are driven by this same client.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadtests.sources import random_call


@dataclass
class LoadSpec:
    host: str
    port: int
    path: str
    kind: str  # "call" | "positions" | "floor_call" | "floor_positions"
    duration_s: float
    connections: int
    token: str = ""
    rate_per_s: float = 0.0  # 0: closed loop, as fast as answers come
    max_requests: int = 0  # 0: until the duration ends
    unit_ids: list[int] = field(default_factory=list)
    batch: int = 500
    seed: int = 1


@dataclass
class LoadResult:
    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    items: int = 0  # positions sent (kind positions)

    def merge(self, other: LoadResult) -> None:
        self.requests += other.requests
        self.statuses.update(other.statuses)
        self.latencies_ms.extend(other.latencies_ms)
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)
        self.items += other.items


def make_body(spec: LoadSpec, rng: random.Random) -> tuple[bytes, dict[str, str]]:
    headers: dict[str, str] = {}
    if spec.kind in ("call", "floor_call"):
        key = uuid.uuid4().hex
        headers["Idempotency-Key"] = key
        return orjson.dumps(random_call(rng, tag=key)), headers
    # An AVL gateway's batch: distinct units, in id order (a stable lock order).
    ids = sorted(rng.sample(spec.unit_ids, min(spec.batch, len(spec.unit_ids))))
    batch = [
        {
            "unit_id": uid,
            "lat": round(51.50 + rng.uniform(-0.08, 0.08), 6),
            "lng": round(-0.12 + rng.uniform(-0.15, 0.15), 6),
        }
        for uid in ids
    ]
    return orjson.dumps(batch), headers


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 response off a keep-alive connection: its status line (empty when
    the server closed), with headers and body read past."""
    status_line = await reader.readline()
    if not status_line:
        return status_line
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status_line


def encode_request(
    method: str, path: str, token: str = "", body: bytes = b"", host: str = "127.0.0.1"
) -> bytes:
    """One keep-alive HTTP/1.1 request, encoded once so replaying it costs the client
    nothing but the write."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def _replay_client(
    port: int,
    requests: list[bytes],
    end: float,
    lat: list[float],
    codes: Counter[str],
    every_s: float,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    next_at = time.monotonic() + random.uniform(0, every_s)
    try:
        while time.monotonic() < end:
            if every_s:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += every_s
            request = requests[i % len(requests)]
            i += 1
            started = time.perf_counter()
            writer.write(request)
            status = await read_response(reader)
            if not status:
                codes["closed"] += 1
                return
            lat.append((time.perf_counter() - started) * 1000)
            codes[status.split()[1].decode()] += 1
    finally:
        writer.close()


def replay(
    port: int, requests: list[bytes], clients: int, seconds: float, every_s: float = 0.0
) -> dict[str, Any]:
    """`clients` keep-alive connections cycling through encoded requests (each starting at
    its own offset): closed loop (every_s 0: the next request as soon as the answer
    arrives) or paced (one request per client every every_s)."""
    from loadtests.sources import percentile

    async def main() -> dict[str, Any]:
        lat: list[float] = []
        codes: Counter[str] = Counter()
        end = time.monotonic() + seconds
        step = max(1, len(requests) // clients)
        started = time.monotonic()
        await asyncio.gather(
            *(
                _replay_client(
                    port, requests[i * step :] + requests[: i * step], end, lat, codes, every_s
                )
                for i in range(clients)
            )
        )
        elapsed = time.monotonic() - started
        ok = sum(v for k, v in codes.items() if k.startswith("2"))
        return {
            "requests": len(lat),
            "errors": {k: v for k, v in codes.items() if not k.startswith("2")},
            "rate_per_s": round(ok / elapsed, 1),
            "p50_ms": round(percentile(lat, 50) or 0, 2),
            "p99_ms": round(percentile(lat, 99) or 0, 2),
            "max_ms": round(max(lat) if lat else 0, 2),
        }

    return asyncio.run(main())


async def _connection(
    spec: LoadSpec, result: LoadResult, end: float, rng: random.Random, budget: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(spec.host, spec.port)
    auth = f"Authorization: Bearer {spec.token}\r\n" if spec.token else ""
    pace = spec.connections / spec.rate_per_s if spec.rate_per_s > 0 else 0.0
    next_at = time.monotonic() + rng.uniform(0, pace)
    try:
        while time.monotonic() < end:
            if spec.max_requests:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            if pace:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += pace
            body, extra = make_body(spec, rng)
            head = (
                f"POST {spec.path} HTTP/1.1\r\nHost: {spec.host}\r\n{auth}"
                "Content-Type: application/json\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                + f"Content-Length: {len(body)}\r\n\r\n"
            )
            started = time.perf_counter()
            writer.write(head.encode() + body)
            status_line = await read_response(reader)
            if not status_line:
                result.statuses["closed"] += 1
                return
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.requests += 1
            code = status_line.split()[1].decode()
            result.statuses[code] += 1
            if spec.kind in ("positions", "floor_positions") and code.startswith("2"):
                result.items += min(spec.batch, len(spec.unit_ids))
    except (OSError, asyncio.IncompleteReadError) as exc:
        result.statuses[type(exc).__name__] += 1
    finally:
        writer.close()


async def _run(spec: LoadSpec) -> LoadResult:
    result = LoadResult()
    rng = random.Random(spec.seed)
    started = time.monotonic()
    end = started + spec.duration_s
    budget = [spec.max_requests]
    await asyncio.gather(
        *(
            _connection(spec, result, end, random.Random(rng.random()), budget)
            for _ in range(spec.connections)
        )
    )
    result.elapsed_s = time.monotonic() - started
    return result


def _child(spec: LoadSpec) -> LoadResult:
    return asyncio.run(_run(spec))


def run_load(spec: LoadSpec, processes: int = 1) -> LoadResult:
    """Split connections (and rate, and request budget) over processes; merge the answers."""
    if processes <= 1:
        return _child(spec)
    specs = []
    for i in range(processes):
        part = LoadSpec(**{**spec.__dict__})
        part.connections = max(1, spec.connections // processes)
        part.rate_per_s = spec.rate_per_s / processes
        part.max_requests = spec.max_requests // processes if spec.max_requests else 0
        part.seed = spec.seed * 100 + i
        specs.append(part)
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes) as pool:
        parts = pool.map(_child, specs)
    total = LoadResult()
    for p in parts:
        total.merge(p)
    return total


def median_index(values: list[float]) -> int:
    """Which of the rounds has the median value (the upper one of an even count)."""
    return sorted(range(len(values)), key=values.__getitem__)[len(values) // 2]


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Of rounds' summaries, the round with the median rate, with every round's rate."""
    rates = [r["rate_per_s"] for r in runs]
    return {**runs[median_index(rates)], "rounds_rate_per_s": rates}


def summary(result: LoadResult) -> dict[str, Any]:
    from loadtests.sources import percentile

    ok = sum(v for k, v in result.statuses.items() if k.startswith("2"))
    lat = result.latencies_ms
    return {
        "requests": result.requests,
        "ok": ok,
        "errors": {k: v for k, v in result.statuses.items() if not k.startswith("2")},
        "rate_per_s": round(ok / result.elapsed_s, 1) if result.elapsed_s else 0.0,
        "items_per_s": round(result.items / result.elapsed_s, 1) if result.elapsed_s else 0.0,
        "p50_ms": _r(percentile(lat, 50)),
        "p99_ms": _r(percentile(lat, 99)),
        "max_ms": _r(max(lat) if lat else None),
        "elapsed_s": round(result.elapsed_s, 2),
    }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)
