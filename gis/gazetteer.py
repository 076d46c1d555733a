"""A small London gazetteer: borough names, major stations and landmarks to a point.

Enough for a handler to type "Waterloo station" when the caller has no handset
location. A real deployment plugs in an address base (UPRN) behind the same function.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

_PLACES: dict[str, tuple[float, float]] = {
    # Boroughs (town centres)
    "barking and dagenham": (51.5397, 0.0810),
    "barnet": (51.6252, -0.1517),
    "bexley": (51.4549, 0.1505),
    "brent": (51.5588, -0.2817),
    "bromley": (51.4039, 0.0198),
    "camden": (51.5390, -0.1426),
    "city of london": (51.5155, -0.0922),
    "croydon": (51.3762, -0.0982),
    "ealing": (51.5130, -0.3089),
    "enfield": (51.6523, -0.0807),
    "greenwich": (51.4826, -0.0077),
    "hackney": (51.5450, -0.0553),
    "hammersmith and fulham": (51.4927, -0.2339),
    "haringey": (51.5906, -0.1110),
    "harrow": (51.5806, -0.3420),
    "havering": (51.5779, 0.2121),
    "hillingdon": (51.5441, -0.4760),
    "hounslow": (51.4668, -0.3615),
    "islington": (51.5465, -0.1058),
    "kensington and chelsea": (51.5020, -0.1947),
    "kingston upon thames": (51.4123, -0.3007),
    "lambeth": (51.4607, -0.1163),
    "lewisham": (51.4452, -0.0209),
    "merton": (51.4098, -0.2108),
    "newham": (51.5255, 0.0352),
    "redbridge": (51.5590, 0.0741),
    "richmond upon thames": (51.4613, -0.3037),
    "southwark": (51.5035, -0.0804),
    "sutton": (51.3618, -0.1945),
    "tower hamlets": (51.5099, -0.0059),
    "waltham forest": (51.5908, -0.0134),
    "wandsworth": (51.4567, -0.1910),
    "westminster": (51.4975, -0.1357),
    # Stations
    "kings cross station": (51.5308, -0.1238),
    "st pancras station": (51.5319, -0.1263),
    "euston station": (51.5282, -0.1337),
    "paddington station": (51.5154, -0.1755),
    "waterloo station": (51.5031, -0.1132),
    "victoria station": (51.4952, -0.1441),
    "liverpool street station": (51.5178, -0.0823),
    "london bridge station": (51.5048, -0.0863),
    "charing cross station": (51.5080, -0.1247),
    "marylebone station": (51.5225, -0.1631),
    "fenchurch street station": (51.5115, -0.0788),
    "cannon street station": (51.5113, -0.0904),
    "stratford station": (51.5416, -0.0042),
    "clapham junction station": (51.4643, -0.1704),
    "oxford circus station": (51.5152, -0.1418),
    "canary wharf station": (51.5035, -0.0187),
    "brixton station": (51.4627, -0.1145),
    "wembley park station": (51.5635, -0.2795),
    # Landmarks
    "trafalgar square": (51.5080, -0.1281),
    "buckingham palace": (51.5014, -0.1419),
    "houses of parliament": (51.4995, -0.1248),
    "tower of london": (51.5081, -0.0759),
    "tower bridge": (51.5055, -0.0754),
    "london eye": (51.5033, -0.1196),
    "piccadilly circus": (51.5101, -0.1342),
    "leicester square": (51.5113, -0.1281),
    "oxford street": (51.5154, -0.1410),
    "hyde park": (51.5073, -0.1657),
    "british museum": (51.5194, -0.1270),
    "wembley stadium": (51.5560, -0.2796),
    "o2 arena": (51.5030, 0.0032),
    "olympic park": (51.5430, -0.0166),
    "heathrow airport": (51.4700, -0.4543),
    "city airport": (51.5048, 0.0495),
    "camden market": (51.5413, -0.1466),
    "notting hill": (51.5090, -0.1960),
    "soho": (51.5136, -0.1365),
    "covent garden": (51.5117, -0.1240),
    "shoreditch": (51.5265, -0.0780),
    "brick lane": (51.5215, -0.0717),
    "greenwich park": (51.4769, 0.0005),
    "hampstead heath": (51.5608, -0.1655),
    "st thomas hospital": (51.4985, -0.1184),
    "royal london hospital": (51.5187, -0.0596),
    "new scotland yard": (51.5025, -0.1239),
}

_ALIASES = {
    "kings x": "kings cross station",
    "the o2": "o2 arena",
    "big ben": "houses of parliament",
}


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    lat: float
    lng: float


def _normalise(text: str) -> str:
    text = text.lower().replace("&", " and ").replace("'", "")
    text = re.sub(r"[^a-z0-9 ]+", " ", text)
    text = re.sub(r"\b(london borough of|royal borough of|the)\b", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def _index() -> dict[str, str]:
    keys = {_normalise(k): k for k in _PLACES}
    for name in list(_PLACES):
        if name.endswith(" station"):
            keys.setdefault(_normalise(name.removesuffix(" station")), name)
    for alias, name in _ALIASES.items():
        keys[_normalise(alias)] = name
    return keys


def resolve(text: str) -> Place | None:
    """The place a free-text location names, or None if it names none we know."""
    keys = _index()
    query = _normalise(text)
    if not query:
        return None
    name = keys.get(query)
    if name is None:
        # "outside Waterloo station, by the taxi rank": find a known name inside the text.
        hits = [k for k in keys if re.search(rf"\b{re.escape(k)}\b", query)]
        if hits:
            name = keys[max(hits, key=len)]
    if name is None:
        return None
    lat, lng = _PLACES[name]
    return Place(name.title(), lat, lng)


def suggestions(text: str, n: int = 3) -> list[str]:
    keys = _index()
    close = difflib.get_close_matches(_normalise(text), list(keys), n=n, cutoff=0.6)
    return list(dict.fromkeys(keys[c].title() for c in close))
