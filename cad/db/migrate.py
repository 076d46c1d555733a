"""Versioned SQL migrations: each file once, in its own transaction, recorded in a table.

Two processes migrating at once serialise on a transaction-scoped advisory lock, so the
second finds the work done and applies nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

log = structlog.get_logger(__name__)

# Arbitrary constant, chosen once: the key every migrating process locks on.
MIGRATION_LOCK_KEY = 0x0CAD_0001


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    folder = resources.files("cad.db") / "migrations"
    found = [
        Migration(entry.name.removesuffix(".sql"), entry.read_text())
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found, key=lambda m: m.version)


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; returns the versions applied by this call."""
    async with conn.transaction():
        # Under the lock too: two concurrent CREATE TABLE IF NOT EXISTS can still collide.
        await conn.execute("SELECT pg_advisory_xact_lock($1::bigint)", MIGRATION_LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
    applied: list[str] = []
    for migration in available_migrations():
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1::bigint)", MIGRATION_LOCK_KEY)
            done = await conn.fetchval(
                "SELECT checksum FROM schema_migrations WHERE version = $1", migration.version
            )
            if done is not None:
                if done != migration.checksum:
                    raise RuntimeError(
                        f"migration {migration.version} changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                migration.version,
                migration.checksum,
            )
            applied.append(migration.version)
            log.info("migration.applied", version=migration.version)
    return applied


async def ensure_database(dsn: str) -> None:
    """Create the target database if it is missing (connecting to `postgres`)."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        base, _, name = dsn.rpartition("/")
        name = name.split("?")[0]
        admin = await asyncpg.connect(f"{base}/postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            # Another process created it between our check and our CREATE.
            pass
        finally:
            await admin.close()
    else:
        await conn.close()
