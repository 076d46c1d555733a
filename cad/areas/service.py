"""Response areas (boroughs) and sectors (wards): the imported sets if any, else London.

Levels: 'borough' is the response area every incident and unit is filed under; 'ward' is the
sector level within it. With nothing imported both are the built-in London sets. An imported
borough set makes the London wards meaningless, so then wards are only what was imported at
the ward level (or none).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from cad.areas import repository
from cad.events.filters import parse_filter
from cad.events.writer import append_event
from gis.areas import AreaSet
from gis.projection import Projector

LEVELS = ("borough", "ward")


def desk_areas(areas: AreaSet, text: str | None) -> list[str] | None:
    """A desk's boroughs from ``areas=A,B`` (None: all London), checked as the event
    stream checks them, so a board's snapshot and its stream show the same incidents."""
    wanted = parse_filter(text, None, None, known_area=areas.by_code, known_grades=())
    return sorted(wanted.areas) if wanted.areas is not None else None


async def load_active(conn: asyncpg.Connection, projector: Projector) -> AreaSet:
    """The active borough-level set."""
    data = await repository.active_geojson(conn, "borough")
    if data is None:
        return AreaSet.london_default()
    return AreaSet.from_geojson(data, projector=projector)


async def load_levels(
    conn: asyncpg.Connection, projector: Projector
) -> tuple[AreaSet, AreaSet | None]:
    """(boroughs, wards) as the app runs with them; wards None when there are none."""
    areas = await load_active(conn, projector)
    data = await repository.active_geojson(conn, "ward")
    if data is not None:
        # Wards share the boroughs' service area: a point in the service area always gets
        # a ward (the nearest, where the two files disagree by a few metres).
        wards = AreaSet.from_geojson(data, projector=projector, service_area=areas.service_area)
    elif areas is AreaSet.london_default():
        wards = AreaSet.london_wards()
    else:
        wards = None
    return areas, wards


async def import_areas(
    conn: asyncpg.Connection,
    data: dict[str, Any],
    source: str,
    actor: str,
    projector: Projector,
    level: str = "borough",
) -> AreaSet:
    """Validate, then replace the active set of that level; workers pick it up at their
    next start."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    areas = AreaSet.from_geojson(data, projector=projector)
    # Store the normalised form (code, name, parent) so every worker reads the same thing;
    # 6 decimals (~0.1 m) so lookups run on the geometry as imported.
    normalised = areas.to_geojson(decimals=6)
    set_id = await repository.replace_active(conn, source, normalised, level)
    await append_event(
        conn,
        "areas.imported",
        actor,
        data={"area_set_id": set_id, "source": source, "count": len(areas), "level": level},
    )
    return areas
