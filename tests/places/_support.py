"""Shared helpers for the gazetteer tests: the real Code-Point rows, read once."""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass

import numpy as np

from tests.conftest import shared_file

CODEPOINT = "london_postcodes_codepoint_2025.csv"
# The official Code-Point Open column order (the files have no header).
OFFICIAL_COLUMNS = (
    "postcode",
    "positional_quality",
    "easting",
    "northing",
    "country_code",
    "nhs_region_code",
    "nhs_ha_code",
    "admin_county_code",
    "admin_district_code",
    "admin_ward_code",
)


@dataclass(frozen=True)
class Postcodes:
    rows: list[dict[str, str]]
    by_postcode: dict[str, dict[str, str]]
    names: list[str]
    xy: np.ndarray  # (n, 2) easting, northing


@functools.cache
def postcodes() -> Postcodes:
    with shared_file(CODEPOINT).open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    xy = np.array([(float(r["easting"]), float(r["northing"])) for r in rows])
    return Postcodes(rows, {r["postcode"]: r for r in rows}, [r["postcode"] for r in rows], xy)


def official_line(row: dict[str, str]) -> str:
    """A row as the official headerless files write it: 7-character postcode (no space
    or two for short outward codes), quoted text fields."""
    outward, inward = row["postcode"].split(" ")
    quoted = [f'"{outward.ljust(4)}{inward}"']
    for c in OFFICIAL_COLUMNS[1:]:
        v = row[c]
        quoted.append(v if c in ("positional_quality", "easting", "northing") else f'"{v}"')
    return ",".join(quoted)
