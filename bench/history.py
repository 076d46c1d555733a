"""(j) Search at scale: a year of a London force's record (1,000,000 incidents by default)
in its own database, then search, reference, phone, postcode, near and the grade preview
(history + markers) over HTTP at 20 clients, and intake with that history vs none.

The history is built the way the record would hold it: incidents at real London
postcodes (the gazetteer `cad seed-demo` loads) with a little jitter, their borough and
ward from gis, refs in the real `CAD n/DDMONYY` form numbered per London day, 1-3 calls
each from a pool of phones in which a few frequent callers recur hundreds of times,
remarks as `incident.remark` events, units from the seeded fleet on most closed jobs,
and `search_tsv` computed by the same `cad_search_doc()` intake calls (its place words
from intake's own `place_text`), with linked callers' words and remarks appended as
intake appends them. Rows go in with COPY into staging tables, then INSERT … SELECT;
secondary indexes are dropped first and rebuilt from their own definitions after (as a
restore would), then VACUUM ANALYZE.

Lookups are measured paced (each of 20 clients one request per 250 ms, the handler
console's preview debounce) for latency and closed loop for throughput; every lookup
kind is also EXPLAINed (ANALYZE, BUFFERS) through the API's own service functions, and
every distinct text query's database time is kept, so a miss names its query and plan.

    python -m bench.run --only history [--history-size 50000]
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import quote
from zoneinfo import ZoneInfo

import asyncpg
import numpy as np
import orjson

from bench.loadgen import encode_request, median_run, replay
from cad.calls.service import place_text
from loadtests.sources import random_risk

HISTORY = 1_000_000
QUICK_HISTORY = 50_000
DAYS = 365
LONDON = ZoneInfo("Europe/London")
CHUNK = 50_000

# -- what a year of calls looks like ----------------------------------------------------

# Share of incidents by type: a force's demand is mostly ASB, theft, concern for welfare,
# domestics and noise; firearms calls are a handful a day in London.
TYPE_WEIGHTS: dict[str, float] = {
    "ASB": 12, "CONCERN_WELFARE": 10, "THEFT": 9, "DOMESTIC": 8, "SUSPICIOUS": 7,
    "VIOLENCE": 7, "NOISE": 6, "ABANDONED_CALL": 5, "ADVICE": 4, "RTC_DAMAGE": 4,
    "ALARM": 4, "SHOPLIFTING_DETAINED": 3, "VEHICLE_CRIME": 3, "BURGLARY": 3,
    "CRIMINAL_DAMAGE": 3, "MISSING_PERSON": 3, "LOST_PROPERTY": 2, "PUBLIC_ORDER": 2,
    "BURGLARY_IN_PROGRESS": 1.5, "RTC_INJURY": 1.5, "ROBBERY": 1.5, "DRUGS": 1.5,
    "DRINK_DRIVER": 1, "KNIFE": 0.8, "HATE_CRIME": 0.7, "SEXUAL_OFFENCE": 0.6,
    "SUDDEN_DEATH": 0.4, "FIREARMS": 0.1,
}  # fmt: skip
# Calls by hour of day (UTC, near enough): quiet at dawn, busiest in the evening.
HOURLY = [3, 2.5, 2, 1.5, 1.2, 1, 1.2, 2, 3, 3.5, 4, 4.2, 4.5, 4.6, 4.8, 5.2, 5.6, 5.8, 6, 6,
          5.8, 5.4, 4.8, 4]  # fmt: skip
OPEN_WINDOW_S = 3 * 3600  # younger than this and not yet closed: still open
HOT_POSTCODES = 3000  # town centres, stations, problem addresses: repeat locations
HOT_SHARE = 0.15
FREQUENT_CALLERS = 300
FREQUENT_SHARE = 0.015
STANDALONE_SHARE = 0.04  # calls that made no incident (advice, hoax, accidental)

FIRST = ["James", "Mohammed", "Oliver", "David", "Daniel", "Michael", "Thomas", "Adam",
         "Ryan", "Jamal", "Kwame", "Tomasz", "Luca", "Harry", "George", "Sam", "Ali",
         "Chloe", "Sarah", "Emma", "Olivia", "Amira", "Fatima", "Jessica", "Sophie",
         "Grace", "Aisha", "Priya", "Hannah", "Laura", "Rebecca", "Margaret", "Patricia",
         "Joan", "Agnieszka", "Maria", "Chantelle", "Zainab", "Ellie", "Niamh"]  # fmt: skip
SURNAMES = ["Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson",
            "Thomas", "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker",
            "White", "Edwards", "Hughes", "Green", "Hall", "Lewis", "Harris", "Clarke",
            "Patel", "Khan", "Ahmed", "Begum", "Hussain", "Ali", "Okafor", "Mensah",
            "Kowalski", "Nowak", "O'Brien", "Murphy", "Kelly", "Campbell", "Stewart",
            "Rossi", "Silva", "Santos", "Nguyen", "Chen", "Singh", "Kaur", "Shah", "Reid",
            "Baker", "Cooper", "Morgan"]  # fmt: skip
STREETS = ["High Street", "Station Road", "Church Road", "London Road", "Park Road",
           "Victoria Road", "Green Lane", "Manor Road", "Kings Road", "Queens Road",
           "The Broadway", "Grove Road", "Albert Road", "Mill Lane", "Springfield Road",
           "Alexandra Road", "North Road", "Northumberland Park", "Coldharbour Lane",
           "Walworth Road", "Kilburn High Road", "Mare Street", "Holloway Road",
           "Lordship Lane", "Uxbridge Road", "Seven Sisters Road", "Brixton Hill",
           "Tooting High Street", "Streatham High Road", "Edgware Road"]  # fmt: skip

SLOTS: dict[str, list[str]] = {
    "who": ["a male", "a female", "two males", "a group of youths", "an elderly male",
            "a teenage girl", "a man in his 30s", "a woman in her 40s", "three males",
            "a young male", "a drunk male", "a couple", "a man with a dog"],
    "clothes": ["wearing a black hoodie", "in a grey tracksuit", "wearing a red puffer jacket",
                "in a hi-vis vest", "wearing a balaclava", "in a blue Nike jacket",
                "wearing a white cap", "in a green parka", "wearing a face mask",
                "in school uniform", "wearing a long black coat"],
    "place": ["outside the Co-op", "near the bus stop", "in the park", "by the station entrance",
              "outside the chicken shop", "in the car park", "at the back of the flats",
              "on the high street", "outside the school gates", "in the stairwell",
              "by the canal towpath", "outside the pub", "at the petrol station",
              "in the underpass", "outside the betting shop", "by the cash machine"],
    "weapon": ["a knife", "a large kitchen knife", "a machete", "a hammer", "a baseball bat",
               "a screwdriver", "a broken bottle", "a metal pole", "a zombie knife"],
    "item": ["a phone", "a bicycle", "a handbag", "a laptop", "a wallet", "an e-scooter",
             "bank cards", "a parcel", "a rucksack", "car keys", "a watch"],
    "rel": ["her partner", "his ex-partner", "her husband", "her son", "her boyfriend",
            "a family member", "his brother", "her ex-husband"],
    "colour": ["silver", "black", "white", "grey", "blue", "red", "dark green"],
    "vehicle": ["Ford Fiesta", "Vauxhall Corsa", "BMW 3 Series", "Toyota Prius",
                "Mercedes Sprinter van", "Honda moped", "Ford Transit van", "Range Rover",
                "Audi A3", "Nissan Qashqai", "Yamaha scooter", "VW Golf", "Tesla Model 3"],
    "goods": ["alcohol", "meat", "razor blades", "baby formula", "perfume", "cheese",
              "washing powder", "phone chargers"],
    "shop": ["Tesco Express", "Sainsbury's Local", "Boots", "Lidl", "the Co-op", "Primark",
             "JD Sports", "Superdrug", "the off licence", "Costcutter"],
    "age": ["11", "12", "13", "14", "15", "16", "17"],
    "dir": ["towards the station", "towards the high street", "into the estate",
            "on foot towards the park", "on a moped", "in a car", "along the canal"],
    "outcome": ["words of advice given", "parties separated", "no offences disclosed",
                "male arrested", "area search negative", "caller reassured",
                "crime report taken", "property recovered", "referred to the council"],
}  # fmt: skip
SLOTS["veh"] = [f"{c} {v}" for c in SLOTS["colour"] for v in SLOTS["vehicle"]]

TEMPLATES: dict[str, list[str]] = {
    "ASB": ["{who} {clothes} shouting and swearing {place}, caller feels intimidated",
            "youths on mopeds riding on the pavement {place}",
            "group drinking and playing loud music {place}, third time this week",
            "{who} kicking bins and throwing stones at windows {place}",
            "{who} smoking cannabis {place}, abusive when challenged"],
    "NOISE": ["loud music from the flat above since midnight, caller cannot sleep",
              "party at neighbouring address, shouting and music, about fifty people",
              "dog barking constantly next door, neighbour not answering the door",
              "building work noise late at night, drilling and banging"],
    "THEFT": ["{item} stolen {place}, suspect {who} {clothes} made off {dir}",
              "caller's {item} taken from table in a cafe, CCTV available",
              "{item} snatched by {who} {dir}", "{item} stolen from locker at the gym"],
    "SHOPLIFTING_DETAINED": ["store security at {shop} holding {who} for theft of {goods}",
                             "{who} detained by staff at {shop} with {goods} in a bag",
                             "security at {shop} detained {who}, abusive, stole {goods}"],
    "DOMESTIC": ["caller reports {rel} shouting and threatening her, children in the house",
                 "verbal argument with {rel}, caller wants him removed from the address",
                 "neighbour hears screaming and banging from the flat, female crying",
                 "{rel} has pushed the caller and smashed her phone",
                 "caller says {rel} is outside and breaching a non-molestation order"],
    "VIOLENCE": ["fight between {who} {place}, one male on the floor bleeding",
                 "caller assaulted by {who} {clothes}, punched in the face",
                 "{who} attacked {place}, suspect made off {dir}",
                 "door staff report a glassing inside the pub, victim bleeding heavily"],
    "KNIFE": ["{who} {clothes} seen with {weapon} {place}",
              "caller threatened with {weapon} during an argument {place}",
              "{who} waving {weapon} and shouting {place}"],
    "FIREARMS": ["caller believes {who} has a handgun {place}",
                 "sound of gunshots heard near the estate, several calls",
                 "{who} seen with what looks like a shotgun in a {veh}"],
    "ROBBERY": ["caller robbed of {item} by {who} {clothes} {place}, threatened with {weapon}",
                "phone snatched by two males on a moped {place}",
                "{who} demanded the caller's {item} {place} and made off {dir}"],
    "SEXUAL_OFFENCE": ["female reports being touched inappropriately by {who} on a bus",
                       "caller reports sexual assault last night, suspect known to her",
                       "{who} exposing himself {place}"],
    "HATE_CRIME": ["{who} shouting racist abuse at shop staff {place}",
                   "homophobic graffiti sprayed on the caller's front door",
                   "{who} abusing a woman wearing a headscarf {place}"],
    "PUBLIC_ORDER": ["large group fighting {place}, bottles being thrown",
                     "{who} drunk and abusive to door staff outside the pub",
                     "football fans fighting {place}, police needed"],
    "BURGLARY_IN_PROGRESS": ["caller hears someone breaking in through the back window",
                             "{who} {clothes} climbing over the rear fence, torch seen inside",
                             "front door of neighbour's house kicked in, males still inside"],
    "BURGLARY": ["caller returned home to find the front door forced, jewellery and {item} taken",
                 "shed broken into overnight, bicycle and power tools stolen",
                 "flat burgled while caller on holiday, window smashed"],
    "VEHICLE_CRIME": ["{veh} {plate} broken into overnight, window smashed",
                      "catalytic converter stolen from {veh} {plate}",
                      "{veh} {plate} stolen from outside the address"],
    "CRIMINAL_DAMAGE": ["windows of {veh} smashed {place}", "graffiti on the bus shelter {place}",
                        "{who} kicked the door of the caller's flat",
                        "tyres of {veh} slashed overnight"],
    "RTC_INJURY": ["collision between {veh} and a cyclist, cyclist injured, ambulance called",
                   "{veh} {plate} hit a pedestrian on the zebra crossing",
                   "two-car collision at the junction, driver trapped"],
    "RTC_DAMAGE": ["minor collision between {veh} and {veh}, no injuries, drivers arguing",
                   "{veh} {plate} hit a parked car and drove off",
                   "{veh} in collision with a bus, no injuries"],
    "DRINK_DRIVER": ["{veh} {plate} driving erratically, weaving across lanes",
                     "driver of {veh} smelled of alcohol, just left the pub",
                     "{veh} {plate} mounted the kerb twice, driver slumped"],
    "CONCERN_WELFARE": ["caller concerned for elderly neighbour not seen for days, post piling up",
                        "{who} sitting on the bridge railing, appears distressed",
                        "friend sent worrying messages and is not answering the phone",
                        "{who} lying on the pavement {place}, not responding"],
    "MISSING_PERSON": ["{age}-year-old not returned home from school",
                       "elderly male with dementia left the care home wearing pyjamas",
                       "daughter aged {age} missing since last night, phone off"],
    "SUDDEN_DEATH": ["caller found neighbour unresponsive in the flat, LAS on scene",
                     "male found deceased in the park", "family found father dead in bed"],
    "SUSPICIOUS": ["{who} {clothes} trying car door handles {place}",
                   "{veh} {plate} parked with engine running for hours, occupants watching houses",
                   "strong smell of cannabis from {veh}", "{who} looking into windows {place}"],
    "ALARM": ["intruder alarm sounding at {shop}, no keyholder",
              "burglar alarm at neighbouring house, back door appears open",
              "alarm company reports activation at {shop}"],
    "DRUGS": ["drug dealing from {veh} {place}", "{who} using drugs in the stairwell, needles left",
              "cars pulling up at the address all night, suspected dealing"],
    "ABANDONED_CALL": ["silent 999 call, line open, background noise",
                       "abandoned call, callback no answer", "child playing with phone"],
    "LOST_PROPERTY": ["found {item} {place}", "caller lost {item} on the bus",
                      "{item} handed in at the front counter"],
    "ADVICE": ["caller asking for advice about a civil dispute with the landlord",
               "query about a parking issue, referred to the council",
               "caller wants advice about online fraud, referred to Action Fraud"],
}  # fmt: skip
LINKED = ["second caller reports the same, {who} {clothes}", "neighbour also calling about this",
          "passer-by reports {who} {place}", "caller's friend calling back, says {who} left {dir}",
          "bus driver reports the same {place}", "another caller, heard screaming"]  # fmt: skip
REMARKS = ["informant called back, {who} now left {dir}", "units on scene, {outcome}",
           "CCTV requested from {shop}", "LAS informed, ref {n}", "crime reported, CRIS {n}",
           "area search negative", "caller updated: suspect {clothes}",
           "neighbour spoken to, {outcome}", "safeguarding referral made",
           "vehicle {plate} checked on PNC, no trace", "keyholder attending, {outcome}"]  # fmt: skip
# A few words a year: what a rare-word search finds (tens of incidents in a million).
RARE = ["tortoise", "harpoon", "hovercraft", "trombone", "taxidermy", "chainsaw", "crossbow",
        "peacock", "ferret", "samurai", "kayak", "accordion", "python", "falcon", "unicycle",
        "gorilla", "catapult", "cutlass", "wheelbarrow", "scaffolding", "parrot", "tarantula",
        "mannequin", "sledgehammer", "jetski", "bagpipes", "quad bike", "hearse", "llama",
        "zebra print"]  # fmt: skip
RARE_SHARE = 0.004
RESULTS: dict[str, list[tuple[str, int]]] = {
    "default": [("NFA", 25), ("ADVICE_GIVEN", 20), ("RESOLVED", 14), ("CRIME_REPORTED", 15),
                ("NO_TRACE", 10), ("ARREST", 6), ("NO_CRIME", 5), ("REFERRED", 5)],
    "ALARM": [("FALSE_ALARM", 70), ("NFA", 20), ("CRIME_REPORTED", 10)],
    "MISSING_PERSON": [("FOUND_SAFE", 80), ("NO_TRACE", 10), ("REFERRED", 10)],
    "ABANDONED_CALL": [("NFA", 85), ("ADVICE_GIVEN", 15)],
    "SUDDEN_DEATH": [("NON_SUSPICIOUS_DEATH", 90), ("REFERRED", 10)],
}  # fmt: skip
MARKER_CATEGORIES = [("vulnerable_person", 30), ("high_risk_domestic", 20), ("dangerous_dog", 12),
                     ("violent_police", 12), ("weapons", 10), ("officer_safety", 10),
                     ("firearms", 3), ("hazmat", 3)]  # fmt: skip
MARKER_TEXT = {
    "vulnerable_person": "occupant has dementia, may wander; daughter is the contact",
    "high_risk_domestic": "MARAC case: victim at risk, attend as a priority",
    "dangerous_dog": "large dog at the address has bitten an officer",
    "violent_police": "male at the address assaulted officers in the past",
    "weapons": "known to carry a knife",
    "officer_safety": "occupant records officers and becomes aggressive",
    "firearms": "licensed shotgun holder",
    "hazmat": "gas cylinders stored in the garage",
}


class _Fill(dict[str, str]):
    """Template slots drawn as format_map asks for them; plates drawn are kept (a sample)
    for the bench's plate searches."""

    def __init__(self, rng: random.Random, plates: list[str]) -> None:
        super().__init__()
        self.rng, self.plates = rng, plates

    def __missing__(self, key: str) -> str:
        if key == "plate":
            reg = plate(self.rng)
            if len(self.plates) < 500:
                self.plates.append(reg)
            return reg
        if key == "n":
            return str(self.rng.randint(1000, 99999))
        return self.rng.choice(SLOTS[key])


_PLATE_LETTERS = "ABCDEFGHJKLMNOPRSTUVWXYZ"
_PLATE_AGES = ("16", "17", "18", "19", "20", "21", "66", "67", "68", "69", "70", "71")


def plate(rng: random.Random) -> str:
    """A current-style UK registration, "LX19 ABC": almost unique, so a plate search
    finds one or two incidents in a million."""
    tail = "".join(rng.choice(_PLATE_LETTERS) for _ in range(3))
    return f"{rng.choice('LBYKE')}{rng.choice(_PLATE_LETTERS)}{rng.choice(_PLATE_AGES)} {tail}"


def phone_digits(idx: int) -> str:
    """Pool index -> a distinct real-looking number: mobiles mostly, London landlines."""
    if idx % 5 == 0:
        return "020" + "78"[idx % 2] + f"{(idx * 7919 + 2_718_281) % 10**7:07d}"
    return "07" + "456789"[idx % 6] + f"{(idx * 7919 + 31_415_926) % 10**8:08d}"


def phone_text(d: str, rng: random.Random) -> str:
    """A number as a handler types it or the network presents it."""
    r = rng.random()
    if d.startswith("020"):
        if r < 0.6:
            return f"{d[:3]} {d[3:7]} {d[7:]}"
        return d if r < 0.85 else f"+44 20 {d[3:7]} {d[7:]}"
    if r < 0.55:
        return f"{d[:5]} {d[5:]}"
    if r < 0.8:
        return d
    return f"+44 {d[1:5]} {d[5:]}" if r < 0.95 else "+44" + d[1:]


def caller_name(idx: int, rng: random.Random) -> str | None:
    """The name a number usually gives; sometimes someone else in the household, or none."""
    r = rng.random()
    if r < 0.05:
        return None
    surname = SURNAMES[(idx * 17 + idx // 7) % len(SURNAMES)]
    first = FIRST[(idx * 31) % len(FIRST)] if r < 0.9 else rng.choice(FIRST)
    return f"{first} {surname}"


# -- the world the generator draws from ---------------------------------------------------


class World:
    def __init__(self, n: int, rng: random.Random) -> None:
        from cad.grading import load_catalogue, load_rules, load_scheme

        self.n = n
        self.rng = rng
        self.catalogue = load_catalogue()
        self.rules = load_rules()
        self.scheme = load_scheme()
        self.types = [c for c in self.catalogue if c in TYPE_WEIGHTS] + [
            c for c in self.catalogue if c not in TYPE_WEIGHTS
        ]
        self.type_cum = list(itertools.accumulate(TYPE_WEIGHTS.get(c, 0.5) for c in self.types))
        self._grades: dict[tuple[str, tuple[Any, ...]], tuple[str, str, str]] = {}
        self.pool = max(1000, 2 * n)  # most numbers call once a year
        self.freq_cum = list(itertools.accumulate(1 / (k + 1) for k in range(FREQUENT_CALLERS)))
        self.plates: list[str] = []
        self.rare_used: Counter[str] = Counter()

    async def load(self, conn: asyncpg.Connection) -> None:
        from gis.areas import AreaSet

        boroughs, wards = AreaSet.london_default(), AreaSet.london_wards()
        rows = await conn.fetch("SELECT postcode, lat, lng FROM postcodes ORDER BY postcode")
        pcs = []
        for r in rows:
            a = boroughs.area_for(r["lat"], r["lng"])
            if a is None:
                continue
            w = wards.area_for(r["lat"], r["lng"])
            pcs.append(
                (r["postcode"], r["lat"], r["lng"], a.code, w.code if w else None,
                 f"{r['postcode']} · {w.name} · {a.name}" if w else f"{r['postcode']} · {a.name}")
            )  # fmt: skip
        if not pcs:
            raise SystemExit("bench history: no postcodes loaded (cad seed-demo first)")
        self.postcodes = pcs
        self.hot = self.rng.sample(range(len(pcs)), min(HOT_POSTCODES, len(pcs)))
        self.hot_cum = list(itertools.accumulate(1 / (k + 1) ** 0.8 for k in range(len(self.hot))))
        units = await conn.fetch("SELECT id, unit_type, capabilities, area_code FROM units")
        self.by_area: dict[str | None, list[int]] = {}
        self.by_cap: dict[str, list[int]] = {}
        for u in units:
            if u["unit_type"] in ("response_car", "foot"):
                self.by_area.setdefault(u["area_code"], []).append(u["id"])
            for cap in u["capabilities"]:
                self.by_cap.setdefault(cap, []).append(u["id"])
        self.handler_id = await conn.fetchval("SELECT id FROM users WHERE username = 'handler'")

    def grade(self, code: str, risk: dict[str, Any]) -> tuple[str, str, str]:
        """(grade, rule, risk json) as intake would decide them (cached per answer set)."""
        from cad.grading import grade_call

        key = (code, tuple(sorted(risk.items())))
        hit = self._grades.get(key)
        if hit is None:
            d = grade_call(self.catalogue[code], risk, self.rules, self.scheme)
            hit = self._grades[key] = (d.grade, d.rule_id, orjson.dumps(risk).decode())
        return hit

    def phone_index(self) -> int:
        rng = self.rng
        if rng.random() < FREQUENT_SHARE:
            return bisect.bisect(self.freq_cum, rng.random() * self.freq_cum[-1])
        return FREQUENT_CALLERS + rng.randrange(self.pool)

    def text(self, template: str) -> str:
        return template.format_map(_Fill(self.rng, self.plates))


def _times(n: int, now: float, rng: np.random.Generator) -> np.ndarray:
    """n creation times over the last DAYS days, busier in the evening, sorted."""
    start = now - DAYS * 86400
    day = rng.integers(0, DAYS, n)
    hours = np.array(HOURLY) / sum(HOURLY)
    hour = rng.choice(24, n, p=hours)
    t = start + day * 86400.0 + hour * 3600.0 + rng.uniform(0, 3600, n)
    t = t[t < now - 60]
    return np.sort(t)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# -- the build --------------------------------------------------------------------------

STAGE = """
CREATE UNLOGGED TABLE bench_stage_incidents (
    id bigint, ref text, type_code text, type_name text, grade text, grade_rule text,
    status text, lat float8, lng float8, address text, area_code text, description text,
    risk jsonb, call_received_at timestamptz, call_answered_at timestamptz,
    created_at timestamptz, target_at timestamptz, first_assigned_at timestamptz,
    first_on_scene_at timestamptz, closed_at timestamptz, result_code text,
    created_by bigint, location_label text, precision_m integer, ward_code text,
    address_line text, postcode text, place text, first_caller text, said1 text, said2 text,
    remark1 text, remark2 text);
CREATE UNLOGGED TABLE bench_stage_events (
    at timestamptz, type text, incident_id bigint, actor text, data jsonb);
"""
STAGE_COLS = [
    "id", "ref", "type_code", "type_name", "grade", "grade_rule", "status", "lat", "lng",
    "address", "area_code", "description", "risk", "call_received_at", "call_answered_at",
    "created_at", "target_at", "first_assigned_at", "first_on_scene_at", "closed_at",
    "result_code", "created_by", "location_label", "precision_m", "ward_code", "address_line",
    "postcode", "place", "first_caller", "said1", "said2", "remark1", "remark2",
]  # fmt: skip
CALL_COLS = [
    "incident_id", "outcome", "caller_name", "caller_phone", "location_source", "lat", "lng",
    "address", "area_code", "type_code", "description", "risk", "received_at", "answered_at",
    "created_at", "handler_id", "location_label", "precision_m", "ward_code", "postcode",
]  # fmt: skip
ASSIGN_COLS = [
    "incident_id", "unit_id", "status", "auto", "dispatched_at", "acknowledged_at",
    "en_route_at", "on_scene_at", "cleared_at", "cleared_reason", "assigned_by",
]  # fmt: skip
# What intake writes, statement for statement: the document at creation
# (cad_search_doc), then each linked caller's words and each remark appended at weight C
# (cad.incidents.repository.add_search_text).
INSERT_INCIDENTS = """
INSERT INTO incidents (id, ref, type_code, grade, grade_rule, status, lat, lng, address,
    area_code, description, risk, call_received_at, call_answered_at, created_at, target_at,
    first_assigned_at, first_on_scene_at, closed_at, result_code, created_by, updated_at,
    location_label, precision_m, ward_code, address_line, postcode, search_tsv)
SELECT id, ref, type_code, grade, grade_rule, status, lat, lng, address, area_code,
       description, risk, call_received_at, call_answered_at, created_at, target_at,
       first_assigned_at, first_on_scene_at, closed_at, result_code, created_by,
       coalesce(closed_at, created_at), location_label, precision_m, ward_code, address_line,
       postcode,
       cad_search_doc(ref, type_name, place, description, first_caller)
       || setweight(to_tsvector('english', coalesce(said1, '')), 'C')
       || setweight(to_tsvector('english', coalesce(said2, '')), 'C')
       || setweight(to_tsvector('english', coalesce(remark1, '')), 'C')
       || setweight(to_tsvector('english', coalesce(remark2, '')), 'C')
FROM bench_stage_incidents WHERE id >= $1 AND id < $2
"""
# The writers' marker (cad/events/writer.py) held while seqs are drawn, as every writer does.
INSERT_EVENTS = """
WITH marker AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared($1::bigint))
INSERT INTO events (seq, at, type, incident_id, unit_id, actor, data)
SELECT nextval('events_seq_seq'), s.at, s.type, s.incident_id, NULL, s.actor, s.data
FROM (SELECT * FROM bench_stage_events ORDER BY at) s, marker
"""
SECONDARY_INDEXES = """
SELECT c.relname AS table, ic.relname AS name, pg_get_indexdef(i.indexrelid) AS def
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE c.relname = ANY($1::text[]) AND c.relnamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
ORDER BY c.relname, ic.relname
"""
TABLES = ["incidents", "calls", "assignments", "events"]


def _chunk(w: World, ts: np.ndarray, lo: int, id0: int, day_no: dict[date, int],
           now: float, remark_events: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], ...]:  # fmt: skip
    """Incidents lo.. of the sorted times: stage rows, calls, assignments (and the remark
    events appended to remark_events)."""
    rng = w.rng
    stage: list[tuple[Any, ...]] = []
    calls: list[tuple[Any, ...]] = []
    assigns: list[tuple[Any, ...]] = []
    pcs, hot, hot_cum = w.postcodes, w.hot, w.hot_cum
    types, type_cum, cat = w.types, w.type_cum, w.catalogue
    for k in range(lo, min(lo + CHUNK, len(ts))):
        t = float(ts[k])
        created = _dt(t)
        iid = id0 + k
        day = created.astimezone(LONDON).date()
        no = day_no[day] = day_no.get(day, 0) + 1
        ref = f"CAD {no}/{day.strftime('%d%b%y').upper()}"
        code = types[bisect.bisect(type_cum, rng.random() * type_cum[-1])]
        risk = random_risk(rng, code)
        grade, rule, risk_json = w.grade(code, risk)
        if rng.random() < HOT_SHARE:
            pc = pcs[hot[bisect.bisect(hot_cum, rng.random() * hot_cum[-1])]]
        else:
            pc = pcs[rng.randrange(len(pcs))]
        postcode, plat, plng, area, ward, line = pc
        lat = round(plat + rng.gauss(0, 12) / 111_200, 6)
        lng = round(plng + rng.gauss(0, 12) / (111_200 * 0.62), 6)
        src = rng.random()
        if src < 0.3:
            source = "address"
            address = (
                f"{rng.randint(1, 240)} {rng.choice(STREETS)}, {postcode}"
                if rng.random() < 0.6
                else postcode
            )
            label, precision, addr_line = postcode, rng.choice((25, 25, 50, 100)), line
        else:
            source = "aml" if src < 0.85 else ("map" if src < 0.95 else "caller")
            address = label = None
            precision = rng.choice((10, 20, 30, 50)) if source == "aml" else 100
            addr_line = "near " + line
        desc = w.text(rng.choice(TEMPLATES.get(code) or TEMPLATES["ADVICE"]))
        if rng.random() < RARE_SHARE:
            word = rng.choice(RARE)
            w.rare_used[word] += 1
            desc += f", caller mentions a {word}"
        received = t - rng.uniform(30, 240)
        answered = received + rng.uniform(2, 20)
        g = w.scheme[grade]
        window = g.target_s or g.appointment_s
        target = t + window if window else None
        closed: float | None = t
        result: str | None = "REFERRED"
        if not g.closes_on_creation:
            scale = {"I": 90, "S": 180, "E": 900}.get(grade, 180) * 60
            closed = t + min(rng.lognormvariate(0, 0.8) * scale, 5 * 86400)
            codes = RESULTS.get(code, RESULTS["default"])
            result = rng.choices([c for c, _ in codes], [wt for _, wt in codes])[0]
            if closed > now or now - t < OPEN_WINDOW_S:
                closed = result = None
        status = "closed" if closed is not None else "pending"
        # Units: most attended grades, some extended ones; none on open ones (the fleet
        # holds one job per unit, and the bench runs with auto-dispatch off).
        first_assigned = first_on_scene = None
        if closed is not None and not g.closes_on_creation:
            share = {"I": 0.95, "S": 0.85, "E": 0.45}.get(grade, 0.0)
            if rng.random() < share:
                local = w.by_area.get(area) or w.by_cap["response"]
                pick = [rng.choice(local)]
                need = [p.capability for p in cat[code].response_plan if p.capability != "response"]
                for cap in need[:1]:
                    if w.by_cap.get(cap) and rng.random() < 0.7:
                        pick.append(rng.choice(w.by_cap[cap]))
                if rng.random() < 0.25:
                    pick.append(rng.choice(local))
                disp = t + rng.uniform(30, 900 if grade == "I" else 3600)
                disp = min(disp, closed - 60) if closed - 60 > t else t + 1
                first_assigned = _dt(disp)
                arrive = min(disp + rng.uniform(180, 1500), closed)
                first_on_scene = _dt(arrive)
                for uid in dict.fromkeys(pick):
                    assigns.append(
                        (iid, uid, "cleared", rng.random() < 0.6, first_assigned,
                         _dt(disp + 20), _dt(disp + 40), first_on_scene, _dt(closed),
                         "incident closed", "dispatcher")
                    )  # fmt: skip
        pidx = w.phone_index()
        digits = phone_digits(pidx)
        first_name = caller_name(pidx, rng)
        created_dt, closed_dt = created, (_dt(closed) if closed is not None else None)
        calls.append(
            (iid, "incident_created", first_name, phone_text(digits, rng), source, lat, lng,
             address, area, code, desc, risk_json, _dt(received), _dt(answered), created_dt,
             w.handler_id, label, precision, ward, postcode)
        )  # fmt: skip
        said: list[str | None] = [None, None]
        extra = rng.random()
        for j in range(2 if extra < 0.08 else 1 if extra < 0.3 else 0):
            at = t + rng.uniform(60, 1800)
            lidx = w.phone_index()
            name = caller_name(lidx, rng)
            text = w.text(rng.choice(LINKED))
            said[j] = " ".join(p for p in (text, name) if p)
            calls.append(
                (iid, "attached", name, phone_text(phone_digits(lidx), rng), "aml", lat, lng,
                 None, area, code, text, risk_json, _dt(at - 60), _dt(at - 50), _dt(at),
                 w.handler_id, None, 30, ward, postcode)
            )  # fmt: skip
        remarks: list[str | None] = [None, None]
        r = rng.random()
        for j in range(2 if r < 0.1 else 1 if r < 0.35 else 0):
            text = w.text(rng.choice(REMARKS))
            remarks[j] = text
            end = closed if closed is not None else now
            at = t + (end - t) * rng.uniform(0.2, 0.95)
            data = orjson.dumps({"ref": ref, "text": text}).decode()
            remark_events.append((_dt(at), "incident.remark", iid, "dispatcher", data))
        stage.append(
            (iid, ref, code, cat[code].name, grade, rule, status, lat, lng, address, area, desc,
             risk_json, _dt(received), _dt(answered), created_dt,
             _dt(target) if target else None, first_assigned, first_on_scene, closed_dt, result,
             w.handler_id, label, precision, ward, addr_line, postcode,
             place_text(cast(Any, SimpleNamespace(line=addr_line, address=address))), first_name, said[0],
             said[1], remarks[0], remarks[1])
        )  # fmt: skip
    return stage, calls, assigns


def _standalone_calls(w: World, n: int, now: float) -> list[tuple[Any, ...]]:
    """Calls that made no incident: advice, hoaxes, pocket dials (they count in a
    phone's history with their outcome)."""
    rng = w.rng
    out = []
    for _ in range(n):
        t = now - rng.uniform(60, DAYS * 86400)
        pidx = w.phone_index()
        postcode, lat, lng, area, ward, _line = w.postcodes[rng.randrange(len(w.postcodes))]
        outcome = rng.choices(["advice", "hoax", "accidental", "other"], [60, 10, 20, 10])[0]
        code = "ABANDONED_CALL" if outcome == "accidental" else "ADVICE"
        desc = w.text(rng.choice(TEMPLATES[code]))
        out.append(
            (None, outcome, caller_name(pidx, rng), phone_text(phone_digits(pidx), rng), "aml",
             lat, lng, None, area, code, desc, "{}", _dt(t - 40), _dt(t - 30), _dt(t),
             w.handler_id, None, 50, ward, postcode)
        )  # fmt: skip
    return out


def _markers(w: World, n: int, now: float) -> list[tuple[Any, ...]]:
    """Warning markers on hot locations, postcodes and frequent callers' phones."""
    rng = w.rng
    cats = [c for c, _ in MARKER_CATEGORIES]
    weights = [wt for _, wt in MARKER_CATEGORIES]
    out = []
    today = datetime.fromtimestamp(now, UTC).date()
    for i in range(n):
        cat = rng.choices(cats, weights)[0]
        created = _dt(now - rng.uniform(86400, DAYS * 86400))
        expires = _dt(now - rng.uniform(3600, 86400 * 60)) if rng.random() < 0.08 else None
        lat = lng = radius = postcode = phone = None
        kind = rng.random()
        pc = w.postcodes[
            w.hot[i % len(w.hot)] if rng.random() < 0.5 else rng.randrange(len(w.postcodes))
        ]
        if kind < 0.55:
            lat, lng, radius = pc[1], pc[2], rng.choice((20, 30, 50, 80))
        elif kind < 0.8:
            postcode = pc[0]
        else:
            idx = i % FREQUENT_CALLERS if i < FREQUENT_CALLERS // 2 else w.phone_index()
            phone = phone_text(phone_digits(idx), rng)
        out.append(
            (cat, MARKER_TEXT[cat], lat, lng, radius, postcode, phone, "supervisor", created,
             created, "supervisor", today + timedelta(days=rng.randint(30, 365)), expires)
        )  # fmt: skip
    return out


async def _ref_offsets(conn: asyncpg.Connection) -> dict[date, int]:
    """Numbers already handed out per day (intake ran before the build): the history
    continues after them so no reference is issued twice."""
    rows = await conn.fetch(
        "SELECT sequencename, last_value FROM pg_sequences WHERE sequencename LIKE 'incident_ref_%'"
    )
    return {
        datetime.strptime(r["sequencename"][13:], "%Y%m%d").date(): int(r["last_value"] or 0)
        for r in rows
    }


async def build(db_url: str, n: int, seed: int = 2026, log: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """The history, measured step by step."""
    from cad.events.writer import EVENTS_LOCK_KEY

    rng = random.Random(seed)
    w = World(n, rng)
    now = time.time()
    steps: dict[str, float] = {}
    t0 = time.monotonic()
    conn = await asyncpg.connect(db_url)
    try:
        await w.load(conn)
        await conn.execute("SET maintenance_work_mem = '256MB'; SET work_mem = '64MB'")
        steps["load_world_s"] = round(time.monotonic() - t0, 1)
        ts = _times(n, now, np.random.default_rng(seed))
        id0 = (await conn.fetchval("SELECT coalesce(max(id), 0) FROM incidents")) + 1
        day_no = await _ref_offsets(conn)
        indexes = await conn.fetch(SECONDARY_INDEXES, TABLES)
        for ix in indexes:
            await conn.execute(f'DROP INDEX "{ix["name"]}"')
        await conn.execute("DROP TABLE IF EXISTS bench_stage_incidents, bench_stage_events")
        await conn.execute(STAGE)
        # Bulk load: FK checks off for this session (every reference is generated valid).
        await conn.execute("SET session_replication_role = replica")
        t = time.monotonic()
        events: list[tuple[Any, ...]] = []
        counts = Counter[str]()
        gen_s = 0.0
        for lo in range(0, len(ts), CHUNK):
            g = time.monotonic()
            stage, calls, assigns = _chunk(w, ts, lo, id0, day_no, now, events)
            gen_s += time.monotonic() - g
            await conn.copy_records_to_table(
                "bench_stage_incidents", records=stage, columns=STAGE_COLS
            )
            await conn.copy_records_to_table("calls", records=calls, columns=CALL_COLS)
            await conn.copy_records_to_table("assignments", records=assigns, columns=ASSIGN_COLS)
            counts.update(incidents=len(stage), calls=len(calls), assignments=len(assigns))
            if lo // CHUNK % 4 == 3:
                log(f"history: {lo + len(stage):,} of {len(ts):,} generated")
        standalone = _standalone_calls(w, int(len(ts) * STANDALONE_SHARE), now)
        await conn.copy_records_to_table("calls", records=standalone, columns=CALL_COLS)
        counts.update(calls=len(standalone), standalone_calls=len(standalone))
        await conn.copy_records_to_table(
            "bench_stage_events",
            records=events,
            columns=["at", "type", "incident_id", "actor", "data"],
        )
        counts["remarks"] = len(events)
        steps["generate_python_s"] = round(gen_s, 1)
        steps["generate_and_copy_s"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        step = 200_000
        for lo in range(id0, id0 + len(ts), step):
            await conn.execute(INSERT_INCIDENTS, lo, lo + step)
        steps["insert_incidents_with_cad_search_doc_s"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        async with conn.transaction():
            await conn.execute(INSERT_EVENTS, EVENTS_LOCK_KEY)
        markers = _markers(w, max(20, len(ts) // 250), now)
        cols = ["category", "text", "lat", "lng", "radius_m", "postcode", "phone", "author",
                "created_at", "updated_at", "updated_by", "review_at", "expires_at"]  # fmt: skip
        await conn.execute(
            "CREATE TEMP TABLE bench_stage_markers (LIKE markers INCLUDING DEFAULTS)"
        )
        await conn.copy_records_to_table("bench_stage_markers", records=markers, columns=cols)
        # The key as the markers service writes it (cad_phone_key in SQL).
        await conn.execute(
            f"""INSERT INTO markers ({", ".join(cols)}, phone_key)
                SELECT {", ".join(cols)}, CASE WHEN phone IS NULL THEN NULL
                       ELSE cad_phone_key(phone) END
                FROM bench_stage_markers ORDER BY created_at"""  # noqa: S608
        )
        await conn.execute("DROP TABLE bench_stage_markers")
        async with conn.transaction():
            await conn.execute(
                """WITH marker AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared($1::bigint))
                   INSERT INTO events (seq, at, type, actor, data)
                   SELECT nextval('events_seq_seq'), m.created_at, 'marker.created', m.author,
                          jsonb_build_object('marker_id', m.id, 'category', m.category,
                                             'text', m.text)
                   FROM (SELECT * FROM markers ORDER BY id) m, marker""",
                EVENTS_LOCK_KEY,
            )
        counts["markers"] = len(markers)
        await conn.execute("SET session_replication_role = DEFAULT")
        for seq, table in (("incidents_id_seq", "incidents"), ("calls_id_seq", "calls"),
                           ("assignments_id_seq", "assignments")):  # fmt: skip
            await conn.execute(f"SELECT setval('{seq}', (SELECT max(id) FROM {table}))")  # noqa: S608
        for day, last in day_no.items():
            name = f"incident_ref_{day.strftime('%Y%m%d')}"
            await conn.execute(f'CREATE SEQUENCE IF NOT EXISTS "{name}"')
            await conn.execute(f"SELECT setval('\"{name}\"', {last})")
        await conn.execute("DROP TABLE bench_stage_incidents, bench_stage_events")
        steps["events_markers_sequences_s"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        index_s = {}
        for ix in indexes:
            i = time.monotonic()
            await conn.execute(ix["def"])
            index_s[ix["name"]] = round(time.monotonic() - i, 1)
        steps["rebuild_indexes_s"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        await conn.execute("VACUUM (ANALYZE) incidents, calls, assignments, events, markers")
        steps["vacuum_analyze_s"] = round(time.monotonic() - t, 1)
        total = time.monotonic() - t0
        sizes = await dataset(conn)
    finally:
        await conn.close()
    return {
        "incidents": counts["incidents"],
        "counts": dict(counts),
        "build_s": round(total, 1),
        "incidents_per_s": round(counts["incidents"] / total),
        "rows_per_s": round(
            (counts["incidents"] + counts["calls"] + counts["assignments"] + counts["remarks"])
            / total
        ),
        "steps": steps,
        "index_build_s": index_s,
        "dataset": sizes,
        "rare_words": dict(w.rare_used.most_common()),
        "plates": w.plates[:50],
    }


async def dataset(conn: asyncpg.Connection) -> dict[str, Any]:
    """Rows and on-disk size (tables with their indexes and TOAST)."""
    out: dict[str, Any] = {}
    for table in ("incidents", "calls", "assignments", "events", "markers"):
        out[table] = {
            "rows": await conn.fetchval(f"SELECT count(*) FROM {table}"),  # noqa: S608
            "mb": round(await conn.fetchval("SELECT pg_total_relation_size($1)", table) / 2**20, 1),
        }
    out["remarks"] = await conn.fetchval(
        "SELECT count(*) FROM events WHERE type = 'incident.remark'"
    )
    out["phones"] = await conn.fetchval(
        "SELECT count(DISTINCT phone_key) FROM calls WHERE phone_key <> ''"
    )
    out["search_index_mb"] = round(
        await conn.fetchval("SELECT pg_relation_size('incidents_search_idx')") / 2**20, 1
    )
    out["database_mb"] = round(
        await conn.fetchval("SELECT pg_database_size(current_database())") / 2**20, 1
    )
    return out


# -- the workload: what handlers look up ---------------------------------------------------

COMMON = ["male", "knife", "shouting", "car", "stolen", "window", "fight", "neighbour",
          "cannabis", "moped", "CCTV", "elderly", "dog", "alarm", "bleeding", "drunk", "phone",
          "caller", "Patel", "Kowalski"]  # fmt: skip
TWO_WORD = ["black hoodie", "bus stop", "loud music", "window smashed", "phone snatched",
            "red puffer", "kitchen knife", "catalytic converter", "care home", "white Transit",
            '"bus stop"', "knife OR machete", "cannabis -vehicle", '"kitchen knife" stairwell']  # fmt: skip
RARE_QUERIES = ["xylophone", "tortoise garden", "crossbow park"]  # none, or a rare pair


def _ref_forms(ref: str, rng: random.Random) -> str:
    """ "CAD 1234/26NOV26" as handlers type it."""
    n, day = ref.removeprefix("CAD ").split("/")
    d, mon, yy = day[:2], day[2:5], day[5:]
    return rng.choice(
        [ref, f"{n}/{d}{mon.lower()}{yy}", f"{n} / {d} {mon.title()} {yy}", f"cad {n}/{day}",
         f"CAD {n} / {int(d)}{mon}{yy}"]
    )  # fmt: skip


async def workload(db_url: str, build_info: dict[str, Any], seed: int = 7) -> dict[str, Any]:
    """Query strings and bodies of each kind, drawn from what the record holds."""
    rng = random.Random(seed)
    conn = await asyncpg.connect(db_url)
    try:
        lo, hi = await conn.fetchrow("SELECT min(id), max(id) FROM incidents")
        ids = [rng.randint(lo, hi) for _ in range(600)]
        inc = await conn.fetch(
            "SELECT ref, lat, lng, postcode FROM incidents WHERE id = ANY($1::bigint[])", ids
        )
        clo, chi = await conn.fetchrow("SELECT min(id), max(id) FROM calls")
        phones = await conn.fetchval(
            "SELECT array_agg(caller_phone) FROM calls WHERE id = ANY($1::bigint[])",
            [rng.randint(clo, chi) for _ in range(400)],
        )
        # Points anywhere in London, not only where incidents were (most places have
        # little or no history).
        spots = await conn.fetch(
            "SELECT lat, lng FROM postcodes WHERE district_code LIKE 'E09%' "
            "ORDER BY md5(postcode) LIMIT 300"
        )
    finally:
        await conn.close()
    rare = list(build_info.get("rare_words", {})) + build_info.get("plates", [])[:15]
    rare += RARE_QUERIES
    text = (
        [rng.choice(COMMON) for _ in range(250)]
        + [rng.choice(TWO_WORD) for _ in range(100)]
        + [rng.choice(rare) for _ in range(150)]
    )
    rng.shuffle(text)

    def digits(p: str) -> str:
        d = "".join(ch for ch in p if ch.isdigit())
        return "0" + d[2:] if d.startswith("44") else d

    phone_q = [phone_text(digits(p), rng) for p in phones] + [
        phone_text(phone_digits(i), rng) for i in range(40)
    ]
    rng.shuffle(phone_q)
    postcodes = []
    for r in inc:
        pc = r["postcode"]
        x = rng.random()
        if x < 0.6:
            postcodes.append(rng.choice([pc, pc.lower(), pc.replace(" ", "")]))
        elif x < 0.85:
            postcodes.append(pc[:-2])  # sector, "SE1 7"
        else:
            postcodes.append(pc.split(" ")[0])  # district, "SE1"
    near = [
        (
            round(r["lat"] + rng.uniform(-3e-4, 3e-4), 6),
            round(r["lng"] + rng.uniform(-5e-4, 5e-4), 6),
        )
        for r in inc
    ]
    types = [c for c in TYPE_WEIGHTS]
    previews = []
    for i, r in enumerate(inc):
        spot = r if i % 5 < 3 or not spots else spots[i % len(spots)]
        lat, lng = spot["lat"], spot["lng"]
        x = rng.random()
        if x < 0.2:
            phone = phone_text(phone_digits(rng.randrange(FREQUENT_CALLERS)), rng)
        elif x < 0.7:
            phone = phone_q[i % len(phone_q)]
        else:
            phone = f"07700 9{rng.randint(0, 99999):05d}"
        previews.append(
            {
                "incident_type": rng.choices(types, [TYPE_WEIGHTS[t] for t in types])[0],
                "risk": {},
                "location": {"lat": round(lat, 6), "lng": round(lng, 6)},
                "caller": {"name": rng.choice(FIRST) + " " + rng.choice(SURNAMES), "phone": phone},
            }
        )
    return {
        "text": text,
        "reference": [_ref_forms(r["ref"], rng) for r in inc],
        "phone": phone_q,
        "postcode": postcodes,
        "near": near,
        "preview": previews,
    }


def requests(work: dict[str, Any], token: str) -> dict[str, list[bytes]]:
    """Each kind's requests, encoded once."""

    def get(path: str) -> bytes:
        return encode_request("GET", path, token)

    return {
        "text": [get(f"/api/search?q={quote(q)}") for q in work["text"]],
        "reference": [get(f"/api/search?q={quote(q)}") for q in work["reference"]],
        "phone": [get(f"/api/search?phone={quote(p)}") for p in work["phone"]],
        "postcode": [get(f"/api/search?postcode={quote(p)}") for p in work["postcode"]],
        "near": [get(f"/api/search?near={a},{b},200") for a, b in work["near"]],
        "preview": [
            encode_request("POST", "/api/calls/grade-preview", token, orjson.dumps(b))
            for b in work["preview"]
        ],
        "grades": [get("/api/grades")],
        "healthz": [encode_request("GET", "/healthz")],
    }


PACED_EVERY_S = 0.25  # the handler console's grade-preview debounce (handler.js)


def measure(port: int, reqs: dict[str, list[bytes]], clients: int, seconds: float,
            log: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    """Each kind twice: paced (every client one request per PACED_EVERY_S, the latency a
    handler sees with the room busy but the server not saturated) and closed loop (the
    next request as soon as the answer arrives: throughput at saturation, where p99 is
    mostly queueing for 2 cores). Baselines before the lookups, and GET /api/grades again
    after them, so drift over the run shows."""
    replay(port, [r for v in reqs.values() for r in v[:50]], clients, 3.0)  # warm-up
    # Others share this machine: what else was running shows in the load average.
    out: dict[str, Any] = {
        "paced_every_ms": PACED_EVERY_S * 1000,
        "load_avg_before": [round(x, 2) for x in os.getloadavg()],
    }
    for kind in ("healthz", "grades", "text", "reference", "phone", "postcode", "near",
                 "preview"):  # fmt: skip
        out[kind] = replay(port, reqs[kind], clients, seconds, PACED_EVERY_S)
        out[f"{kind}_closed_loop"] = replay(port, reqs[kind], clients, seconds / 2)
        log(f"history {kind}: paced {out[kind]}; closed loop {out[f'{kind}_closed_loop']}")
    out["grades_again"] = replay(port, reqs["grades"], clients, seconds, PACED_EVERY_S)
    out["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


async def prewarm(db_url: str) -> dict[str, Any]:
    """Read the record into the OS page cache first, as a server in service has it: this
    VM reclaims cold page cache (kdamond), so straight after the build most reads would
    go to disk, and PostgreSQL's shared_buffers here is the default 128 MB."""
    conn = await asyncpg.connect(db_url)
    try:
        t = time.monotonic()
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        blocks = await conn.fetchval(
            """SELECT sum(pg_prewarm(c.oid, 'read')) FROM pg_class c
               WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i', 't')
                 AND c.relpersistence = 'p'"""
        )
        blocks = int(blocks or 0)
        return {
            "blocks": blocks,
            "mb": round(blocks * 8 / 1024),
            "s": round(time.monotonic() - t, 1),
        }
    finally:
        await conn.close()


# -- plans ---------------------------------------------------------------------------------


def _plan_lines(node: dict[str, Any], depth: int = 0) -> list[str]:
    what = node["Node Type"]
    if "Index Name" in node:
        what += f" using {node['Index Name']}"
    if "Relation Name" in node:
        what += f" on {node['Relation Name']}"
    extra = [f"rows={node.get('Actual Rows')}", f"loops={node.get('Actual Loops')}",
             f"ms={node.get('Actual Total Time')}"]  # fmt: skip
    for key in ("Rows Removed by Filter", "Rows Removed by Index Recheck", "Heap Blocks"):
        if node.get(key):
            extra.append(f"{key.lower().replace(' ', '_')}={node[key]}")
    if node.get("Shared Hit Blocks") or node.get("Shared Read Blocks"):
        extra.append(
            f"buffers hit={node.get('Shared Hit Blocks')} read={node.get('Shared Read Blocks')}"
        )
    for key in ("Index Cond", "Recheck Cond", "Filter", "Sort Key"):
        if key in node:
            extra.append(f"{key.lower().replace(' ', '_')}: {node[key]}")
    lines = ["  " * depth + f"{what} ({', '.join(str(e) for e in extra)})"]
    for child in node.get("Plans", []):
        lines += _plan_lines(child, depth + 1)
    return lines


def _indexes(node: dict[str, Any]) -> set[str]:
    found = {node["Index Name"]} if "Index Name" in node else set()
    for child in node.get("Plans", []):
        found |= _indexes(child)
    return found


def _rows_read(node: dict[str, Any]) -> int:
    """Rows the scans of incidents produced or threw away: the work a plan did."""
    n = 0
    if node.get("Relation Name") == "incidents" and "Scan" in node["Node Type"]:
        n += int(node.get("Actual Rows", 0)) * int(node.get("Actual Loops", 1))
        n += int(node.get("Rows Removed by Filter", 0))
    return n + sum(_rows_read(c) for c in node.get("Plans", []))


class Explaining:
    """A connection for the endpoints' own service functions: every statement they send
    is EXPLAINed (ANALYZE, BUFFERS) with its parameters, then run for real so the next
    step gets real rows. The plans are the queries the API runs, not a copy of them."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.plans: list[dict[str, Any]] = []

    async def _explain(self, sql: str, args: tuple[Any, ...]) -> None:
        raw = await self.conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, *args)
        plan = json.loads(raw)[0]
        self.plans.append(
            {
                "sql": " ".join(sql.split()),
                "args": [a if isinstance(a, int | float | str | None) else str(a) for a in args],
                "planning_ms": plan.get("Planning Time"),
                "execution_ms": plan.get("Execution Time"),
                "indexes": sorted(_indexes(plan["Plan"])),
                "text": _plan_lines(plan["Plan"]),
                "plan": plan["Plan"],
            }
        )

    async def fetch(self, sql: str, *args: Any) -> Any:
        await self._explain(sql, args)
        return await self.conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        await self._explain(sql, args)
        return await self.conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        await self._explain(sql, args)
        return await self.conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> Any:
        return await self.conn.execute(sql, *args)


def _state(db_url: str) -> Any:
    """What the search and history services read from a worker's state."""
    from cad.config import Settings
    from cad.grading import load_catalogue, load_scheme
    from cad.markers.catalogue import load_categories
    from gis.areas import AreaSet

    return SimpleNamespace(
        settings=Settings(database_url=db_url),
        catalogue=load_catalogue(),
        scheme=load_scheme(),
        areas=AreaSet.london_default(),
        wards=AreaSet.london_wards(),
        marker_categories=load_categories(),
    )


async def explain_all(db_url: str, work: dict[str, Any], build_info: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """One request of each kind through the API's own search / history / markers code,
    each statement's plan kept."""
    from cad.markers import service as markers_service
    from cad.search import service as search_service
    from cad.search.schemas import parse_near

    state = _state(db_url)
    rare = next(iter(build_info.get("rare_words", {})), "tortoise")
    searches: dict[str, dict[str, Any]] = {
        "text_common": {"q": "male"},
        "text_two_words": {"q": "black hoodie"},
        "text_rare": {"q": rare},
        "reference": {"q": work["reference"][0]},
        "phone_frequent_caller": {"phone": phone_text(phone_digits(0), random.Random(1))},
        "phone": {"phone": work["phone"][0]},
        "postcode_full": {"postcode": next(p for p in work["postcode"] if len(p) >= 6)},
        "postcode_district": {"postcode": next(p for p in work["postcode"] if len(p) <= 4)},
        "near": {"near": "{},{},200".format(*work["near"][0])},
    }
    out: dict[str, Any] = {}
    conn = await asyncpg.connect(db_url)
    try:
        for name, params in searches.items():
            ex = Explaining(conn)
            near = parse_near(params["near"]) if "near" in params else None
            async with conn.transaction():
                f = await search_service.build_filters(
                    ex, state, text=None, created_from=None, created_to=None, grades=None,
                    types=None, status=None, area=None, ward=None, unit=None,
                    phone=params.get("phone"), postcode=params.get("postcode"), near=near,
                )  # fmt: skip
                answer = await search_service.search(ex, state, params.get("q"), f, None, 20, None)
            out[name] = {
                "params": params,
                "results": len(answer["results"]),
                "statements": ex.plans,
            }
        # Every distinct text query of the workload once: which words cost what.
        costs = []
        for q in sorted(set(work["text"])):
            ex = Explaining(conn)
            async with conn.transaction():
                f = await search_service.build_filters(
                    ex, state, text=None, created_from=None, created_to=None, grades=None,
                    types=None, status=None, area=None, ward=None, unit=None, phone=None,
                    postcode=None, near=None,
                )  # fmt: skip
                answer = await search_service.search(ex, state, q, f, None, 20, None)
            page = max(ex.plans, key=lambda p: p["execution_ms"] or 0)
            costs.append(
                {
                    "q": q,
                    "db_ms": round(sum(p["execution_ms"] or 0 for p in ex.plans), 2),
                    "results": len(answer["results"]),
                    "slowest_statement_indexes": page["indexes"],
                    "slowest_statement_rows_read": _rows_read(page["plan"]),
                }
            )
        out["text_by_query"] = sorted(costs, key=lambda c: -c["db_ms"])
        body = work["preview"][0]
        ex = Explaining(conn)
        lat, lng = body["location"]["lat"], body["location"]["lng"]
        phone = phone_text(phone_digits(3), random.Random(2))
        postcode = await conn.fetchval(
            "SELECT postcode FROM postcodes ORDER BY point(lng, lat) <-> point($2, $1) LIMIT 1",
            lat,
            lng,
        )
        async with conn.transaction():
            hist = await search_service.history(ex, state, lat=lat, lng=lng, phone=phone)
            found = await markers_service.matching(
                ex, state, lat=lat, lng=lng, postcode=postcode, phone=phone
            )
        out["preview_history_and_markers"] = {
            "params": {"lat": lat, "lng": lng, "phone": phone, "postcode": postcode},
            "location_count": (hist["location"] or {}).get("count"),
            "caller_count": (hist["caller"] or {}).get("count"),
            "markers": len(found),
            "statements": ex.plans,
        }
    finally:
        await conn.close()
    return out


# -- the figure ------------------------------------------------------------------------------


INTAKE_ROUNDS = 3


def run(
    db_url: str,
    empty_url: str,
    size: int,
    start_server: Callable[[str], Any],
    intake_once: Callable[[Any], dict[str, Any]],
    token: Callable[[str], str],
    seconds: float,
    log: Callable[[str], None],
    clients: int = 20,
) -> dict[str, Any]:
    """The build (no server on that database meanwhile), every lookup on a fresh server
    over the full record, then intake against it and against a server on an empty
    database, alternating: others share this machine, and rounds taken back to back
    see the same neighbours where one run before and one after the build would not."""
    out: dict[str, Any] = {"size": size, "clients": clients, "seconds": seconds}
    log(f"history: building {size:,} incidents")
    out["build"] = asyncio.run(build(db_url, size, log=log))
    log(f"history: built {out['build']['counts']} in {out['build']['build_s']} s")
    work = asyncio.run(workload(db_url, out["build"]))
    srv = start_server(db_url)
    empty = None
    try:
        reqs = requests(work, token(srv.url))
        out["prewarm"] = asyncio.run(prewarm(db_url))
        log(f"history: prewarmed {out['prewarm']}")
        out["http"] = measure(srv.port, reqs, clients, seconds, log)
        out["plans"] = asyncio.run(explain_all(db_url, work, out["build"]))
        empty = start_server(empty_url)
        runs: dict[str, list[dict[str, Any]]] = {"empty": [], "full": []}
        for i in range(INTAKE_ROUNDS):
            order = (
                (("empty", empty), ("full", srv))
                if i % 2 == 0
                else (("full", srv), ("empty", empty))
            )
            for name, server in order:
                runs[name].append(intake_once(server))
                log(f"history: intake round {i + 1}, {name}: {runs[name][-1]}")
        out["intake_empty"] = median_run(runs["empty"])
        out["intake_full"] = median_run(runs["full"])
    finally:
        srv.stop()
        if empty is not None:
            empty.stop()
    out["examples"] = {k: v[:5] for k, v in work.items()}
    return out
