"""Build the packaged London postcodes (cad/places/data/london_postcodes.csv.gz).

    .venv/bin/python scripts/build_postcodes.py [--data ../shared/data]

Reads OS Code-Point Open 2025 for London (../shared/data/london_postcodes_codepoint_2025.csv,
OGL v3) and keeps only the columns the gazetteer uses: postcode, positional_quality,
easting, northing, admin_district_code, admin_ward_code. Headers keep the source's names, so
`cad gazetteer import` reads the packaged file like the original. Rows are sorted by
postcode and gzip's mtime is 0: the same input gives a byte-identical file.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "cad" / "places" / "data" / "london_postcodes.csv.gz"
SOURCE = "london_postcodes_codepoint_2025.csv"
COLUMNS = (
    "postcode",
    "positional_quality",
    "easting",
    "northing",
    "admin_district_code",
    "admin_ward_code",
)


def build(source: Path, out: Path) -> int:
    with source.open(newline="", encoding="utf-8") as f:
        rows = [tuple(r[c] for c in COLUMNS) for r in csv.DictReader(f)]
    rows.sort(key=lambda r: r[0])
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as gz:
        gz.write(text.getvalue().encode())
    return len(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = p.parse_args()
    n = build(Path(args.data) / SOURCE, OUT)
    print(f"{OUT.relative_to(ROOT)}: {n} postcodes, {OUT.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
