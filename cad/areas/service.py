"""Response areas and the service area: the imported set if any, else built-in London."""

from __future__ import annotations

from typing import Any

import asyncpg

from cad.areas import repository
from cad.events.writer import append_event
from gis.areas import AreaSet
from gis.projection import Projector


async def load_active(conn: asyncpg.Connection, projector: Projector) -> AreaSet:
    data = await repository.active_geojson(conn)
    if data is None:
        return AreaSet.london_default()
    return AreaSet.from_geojson(data, projector=projector)


async def import_areas(
    conn: asyncpg.Connection, data: dict[str, Any], source: str, actor: str, projector: Projector
) -> AreaSet:
    """Validate, then replace the active set; workers pick it up at their next start."""
    areas = AreaSet.from_geojson(data, projector=projector)
    # Store the normalised form (code, name) so every worker reads the same thing.
    normalised = areas.to_geojson()
    set_id = await repository.replace_active(conn, source, normalised)
    await append_event(
        conn,
        "areas.imported",
        actor,
        data={"area_set_id": set_id, "source": source, "count": len(areas)},
    )
    return areas
