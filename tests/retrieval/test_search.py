"""GET /api/search: every filter, ranking, snippets, references, stable pages, 422s, roles."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cad.search.schemas import decode_cursor, encode_cursor
from gis.areas import AreaSet
from tests.conftest import Api, make_settings, running_api
from tests.intake._support import offset
from tests.retrieval._support import (
    CAMDEN,
    GREENWICH,
    HACKNEY,
    LAMBETH,
    TRAFALGAR,
    assign,
    backdate_incident,
    call,
    fields,
    incident,
    move_unit,
    ok,
)

HARROW_ROAD_WARD = (51.527794, -0.200242)  # a point in Westminster's "Harrow Road" ward


async def search(api: Api, user: str = "dispatcher", **params: Any) -> dict[str, Any]:
    if "from_" in params:
        params["from"] = params.pop("from_")
    out: dict[str, Any] = await ok(await api.as_(user, "GET", "/api/search", params=params))
    return out


async def ids(api: Api, **params: Any) -> list[int]:
    return [r["id"] for r in (await search(api, **params))["results"]]


async def walk(api: Api, **params: Any) -> list[int]:
    """Every page's ids, in order, following next_cursor to the end."""
    got: list[int] = []
    cursor = None
    while True:
        page = await search(api, **params, **({"cursor": cursor} if cursor else {}))
        got += [r["id"] for r in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return got


async def test_text_time_grade_type_and_status_filters(api: Api) -> None:
    now = datetime.now(UTC)
    knife = await incident(api, "KNIFE", at=TRAFALGAR, description="man waving it about")
    kitchen = await incident(api, "THEFT", at=LAMBETH, description="knife taken from a kitchen")
    domestic = await incident(api, "DOMESTIC", at=CAMDEN, description="shouting next door")
    blade = await incident(api, "ASB", at=HACKNEY, description="youths with a blade")
    old = now - timedelta(days=10)
    await backdate_incident(api, blade["id"], old)
    await ok(
        await api.as_(
            "dispatcher",
            "POST",
            f"/api/incidents/{domestic['id']}/close",
            json={"result_code": "NFA"},
        )
    )
    uid = await assign(api, kitchen["id"], "CW12")
    await move_unit(api, uid, "en_route", "on_scene")
    assert (knife["grade"], kitchen["grade"], domestic["grade"], blade["grade"]) == (
        "I",
        "E",
        "I",
        "S",
    )

    # No parameters: everything, newest first, matched by filter, unranked.
    everything = await search(api)
    assert [r["id"] for r in everything["results"]] == [
        domestic["id"],
        kitchen["id"],
        knife["id"],
        blade["id"],
    ]
    assert {(r["matched"], r["rank"]) for r in everything["results"]} == {("filter", None)}

    # q: the word in the type name ("Knife or bladed article") outranks it in what was said.
    found = await search(api, q="knife")
    assert [r["id"] for r in found["results"]] == [knife["id"], kitchen["id"]]
    assert {r["matched"] for r in found["results"]} == {"text"}
    assert found["reference"] is None
    assert set(await ids(api, q='"knife" OR blade')) == {knife["id"], kitchen["id"], blade["id"]}
    assert await ids(api, q="knife -kitchen") == [knife["id"]]
    assert await ids(api, q="Kitchens") == [kitchen["id"]]  # stemmed, any case

    # from / to: created within [from, to).
    cut = (now - timedelta(days=1)).isoformat()
    assert set(await ids(api, from_=cut)) == {knife["id"], kitchen["id"], domestic["id"]}
    assert await ids(api, to=cut) == [blade["id"]]
    exact = old.isoformat()
    assert blade["id"] in await ids(api, from_=exact)
    assert blade["id"] not in await ids(api, to=exact)
    assert await ids(api, from_=(old - timedelta(minutes=1)).isoformat(), to=cut) == [blade["id"]]

    # grade, type, status (open = anything not closed).
    assert await ids(api, grade="I") == [domestic["id"], knife["id"]]
    assert await ids(api, grade="I,S") == [domestic["id"], knife["id"], blade["id"]]
    assert await ids(api, type="DOMESTIC,ASB") == [domestic["id"], blade["id"]]
    assert await ids(api, status="open") == [kitchen["id"], knife["id"], blade["id"]]
    assert await ids(api, status="closed") == [domestic["id"]]
    assert await ids(api, status="on_scene") == [kitchen["id"]]
    assert await ids(api, status="pending") == [knife["id"], blade["id"]]
    assert await ids(api, status="pending,closed") == [domestic["id"], knife["id"], blade["id"]]
    assert await ids(api, status="dispatched") == []

    # Combined with AND.
    assert await ids(api, q="knife", grade="E") == [kitchen["id"]]
    assert await ids(api, q="knife", status="closed") == []
    assert await ids(api, type="KNIFE,ASB", status="open", from_=cut) == [knife["id"]]
    assert await ids(api, grade="S", to=cut, q="blade") == [blade["id"]]
    closed = (await search(api, status="closed"))["results"][0]
    assert (closed["status"], closed["result_code"], closed["closed_at"] is not None) == (
        "closed",
        "NFA",
        True,
    )


async def test_area_ward_and_near_filters(api: Api) -> None:
    wards = AreaSet.london_wards()
    ward = wards.by_code("E05000644")
    assert ward is not None and ward.name == "St. James's"
    # The name test below needs it unique (an ambiguous name is a 422: see bad params).
    assert [w.code for w in wards.areas if w.name.casefold() == "st. james's"] == [ward.code]

    here = await incident(api, at=TRAFALGAR)
    near90 = await incident(api, at=offset(*TRAFALGAR, north_m=90))
    lambeth = await incident(api, at=LAMBETH)
    camden = await incident(api, at=CAMDEN)
    assert wards.area_for(*offset(*TRAFALGAR, north_m=90)).code == ward.code  # type: ignore[union-attr]

    assert await ids(api, area="E09000022") == [lambeth["id"]]
    assert await ids(api, area="Lambeth") == [lambeth["id"]]
    assert await ids(api, area="lambeth") == [lambeth["id"]]
    assert await ids(api, area="Westminster") == [near90["id"], here["id"]]
    assert await ids(api, area="E09000007") == [camden["id"]]
    assert await ids(api, ward=ward.code) == [near90["id"], here["id"]]
    assert await ids(api, ward="st. james's") == [near90["id"], here["id"]]
    assert await ids(api, ward="E05000416") == [lambeth["id"]]  # Bishop's
    assert await ids(api, ward="Bishop's", area="Westminster") == []

    lat, lng = TRAFALGAR
    assert await ids(api, near=f"{lat},{lng},100") == [near90["id"], here["id"]]
    assert await ids(api, near=f"{lat},{lng},50") == [here["id"]]
    assert await ids(api, near=f"{lat},{lng},2500") == [lambeth["id"], near90["id"], here["id"]]
    assert await ids(api, near=f"{lat},{lng},2500", area="Lambeth") == [lambeth["id"]]
    row = (await search(api, area="Lambeth"))["results"][0]
    assert (row["area"], row["ward"]) == ("Lambeth", "Bishop's")


async def test_unit_and_phone_filters(api: Api) -> None:
    cleared = await incident(api, at=TRAFALGAR)
    current = await incident(api, at=LAMBETH, caller={"name": "A", "phone": "020 7946 0000"})
    caller = await incident(api, at=CAMDEN, caller={"name": "B", "phone": "+44 7700 900123"})
    other = await incident(api, at=HACKNEY, caller={"name": "C", "phone": "07700 900124"})
    cw12 = await assign(api, cleared["id"], "CW12")
    await move_unit(api, cw12, "en_route", "on_scene", "available")  # the assignment clears
    await assign(api, current["id"], "CW13")
    # A second caller about the current incident, from the same number as `caller`.
    await call(
        api,
        "THEFT",
        at=LAMBETH,
        link_to=current["id"],
        caller={"name": "D", "phone": "07700900123"},
    )

    found = (await search(api, unit="CW12"))["results"]
    assert [r["id"] for r in found] == [cleared["id"]]
    assert found[0]["units"] == ["CW12"]
    assert await ids(api, unit="cw13") == [current["id"]]
    assert await ids(api, unit="CW21") == []

    both = [caller["id"], current["id"]]
    for form in (
        "07700900123",
        "07700 900123",
        "+44 7700 900123",
        "+447700900123",
        "0044 7700 900123",
        "+44 (0)7700 900123",
        "(07700) 900-123",
    ):
        assert await ids(api, phone=form) == both, form
    assert await ids(api, phone="07700 900124") == [other["id"]]
    assert await ids(api, phone="07700 900125") == []
    assert await ids(api, phone="0207 946 0000") == [current["id"]]
    assert await ids(api, phone="07700900123", unit="CW13") == [current["id"]]
    assert await ids(api, phone="07700900123", unit="CW12") == []
    counted = {
        r["id"]: r["call_count"] for r in (await search(api, phone="07700900123"))["results"]
    }
    assert counted == {caller["id"]: 1, current["id"]: 2}


async def test_ranking_by_weight_and_snippets_are_plain_text(api: Api) -> None:
    # One word, "road", once in each part of the document: the type (A), the place (B: the
    # ward "Harrow Road" in the address line), a remark (C), the caller's name (D).
    in_type = await incident(api, "RTC_DAMAGE", at=TRAFALGAR, description="cars bumped")
    in_place = await incident(api, at=HARROW_ROAD_WARD, description="bag taken")
    assert "Harrow Road" in in_place["address_line"]
    in_remark = await incident(api, at=LAMBETH, description="phone taken")
    await ok(
        await api.as_(
            "handler",
            "POST",
            f"/api/incidents/{in_remark['id']}/remarks",
            json={"text": "Suspect ran off down the road"},
        ),
        201,
    )
    in_name = await incident(
        api, at=CAMDEN, description="wallet taken", caller={"name": "Rhoda Road", "phone": ""}
    )
    found = (await search(api, q="road"))["results"]
    assert [r["id"] for r in found] == [
        in_type["id"],
        in_place["id"],
        in_remark["id"],
        in_name["id"],
    ]
    ranks = [r["rank"] for r in found]
    assert ranks == sorted(ranks, reverse=True) and len(set(ranks)) == 4, ranks
    remark = found[2]["snippet"]
    assert [p["text"] for p in remark if p["match"]] == ["road"]
    assert "".join(p["text"] for p in remark).endswith("Suspect ran off down the road")

    # What a caller said comes back as text parts whatever it holds: markup stays literal
    # text (not escaped, not interpreted), and only the matched words are marked.
    hostile = "<img src=x onerror=alert(1)> he took the knife, then ran <svg/onload=alert(2)>"
    forged = "\x02fake\x03 highlight, and a real knife \x03here\x02"
    h = await incident(api, at=GREENWICH, description=hostile)
    f = await incident(api, at=HACKNEY, description=forged)
    for inc in (h, f):
        result = next(r for r in (await search(api, q="knife"))["results"] if r["id"] == inc["id"])
        parts = result["snippet"]
        assert all(set(p) == {"text", "match"} and isinstance(p["text"], str) for p in parts)
        assert [p["text"] for p in parts if p["match"]] == ["knife"], parts
        text = "".join(p["text"] for p in parts)
        assert "\x02" not in text and "\x03" not in text, parts
        assert "&lt;" not in text and "<mark" not in text.lower()
        if inc is h:
            assert "onerror=alert(1)" in text, parts
    text = "".join(p["text"] for p in next(r for r in found if r["id"] == in_type["id"])["snippet"])
    assert text == "cars bumped"
    # Filters only: the account itself, unmarked and verbatim.
    shown = (await search(api, near=f"{GREENWICH[0]},{GREENWICH[1]},10"))["results"][0]
    assert shown["snippet"] == [{"text": hostile, "match": False}]


async def test_reference_in_any_form_finds_the_incident_first(api: Api) -> None:
    # The first holds the words of the last's reference: read as text, those forms would
    # find it too.
    made = [
        await incident(
            api, at=offset(*TRAFALGAR, north_m=300 * i), description="flat 12, on 2 Dec 26"
        )
        if i == 0
        else await incident(api, at=offset(*TRAFALGAR, north_m=300 * i))
        for i in range(12)
    ]
    target = made[11]
    m = re.fullmatch(r"CAD (\d+)/(\d{2})([A-Z]{3})(\d{2})", target["ref"])
    assert m is not None and m[1] == "12", target["ref"]
    number, day, month, year = m.groups()
    forms = (
        target["ref"],
        f"{number}/{day}{month.lower()}{year}",
        f"{number} / {int(day)} {month.title()} {year}",
        f"cad{number}/{int(day)}{month}{year}",
    )
    for form in forms:
        out = await search(api, q=form)
        assert out["reference"] == {"id": target["id"], "ref": target["ref"]}, form
        assert [(r["id"], r["matched"]) for r in out["results"]] == [(target["id"], "reference")]
        # A reference is unambiguous: other filters do not hide it.
        out = await search(api, q=form, grade="R", area="Lambeth")
        assert [r["id"] for r in out["results"]] == [target["id"]], form
    # Incident 1's reference is not found by incident 12's, nor 12's by 1's.
    first = await search(api, q=f"1/{day}{month}{year}")
    assert [r["id"] for r in first["results"]] == [made[0]["id"]]
    missing = await search(api, q=f"CAD 99/{day}{month}{year}")
    assert missing["reference"] is None
    assert made[0]["id"] not in [r["id"] for r in missing["results"]]


@pytest.fixture
async def narrow_api(db_url: str, redis_prefix: str) -> AsyncIterator[Api]:
    """Relevance ranks among only the 20 newest matches (the smallest setting), so a
    page walk shows whether new matches push old ones out of the window mid-walk."""
    async with running_api(make_settings(db_url, redis_prefix, search_candidates=20)) as running:
        yield running


async def test_pages_are_stable_while_new_incidents_arrive(narrow_api: Api) -> None:
    api = narrow_api
    lat, lng = GREENWICH

    async def add(i: int, words: str, type_code: str = "THEFT", name: str = "") -> int:
        at = offset(lat, lng, north_m=40 * (i % 7), east_m=40 * (i // 7))
        caller = {"name": name, "phone": ""}
        return int((await incident(api, type_code, at=at, description=words, caller=caller))["id"])

    # 22 matches at three ranks (ties broken by id), 4 that do not match; some arrive
    # concurrently, so ids and created_at need not agree. (Sign in first: 26 concurrent
    # sign-ins would each hash the password.)
    await api.token("handler")
    made = await asyncio.gather(
        *[add(i, " ".join(["knife"] * (1 + i % 3)) + " seen") for i in range(22)],
        *[add(22 + i, "nothing sharp") for i in range(4)],
    )
    matches = set(made[:22])

    recent_all = (await search(api, q="knife", sort="recent", limit=100))["results"]
    assert {r["id"] for r in recent_all} == matches
    keys = [(r["created_at"], r["id"]) for r in recent_all]
    assert keys == sorted(keys, reverse=True)
    relevant_all = (await search(api, q="knife", limit=100))["results"]
    # Relevance ranks the 20 newest matches; the two oldest are found by sort=recent only.
    assert {r["id"] for r in relevant_all} == {r["id"] for r in recent_all[:20]}
    order = [(-r["rank"], -r["id"]) for r in relevant_all]
    assert order == sorted(order) and len({r["rank"] for r in relevant_all}) == 3

    arrived: list[int] = []

    async def walk_while_inserting(sort: str) -> list[int]:
        got: list[int] = []
        page = await search(api, q="knife", sort=sort, limit=2)
        for turn in range(100):
            got += [r["id"] for r in page["results"]]
            if page["next_cursor"] is None:
                return got
            nxt = search(api, q="knife", sort=sort, limit=2, cursor=page["next_cursor"])
            if turn >= 3:
                page = await nxt
                continue
            # While the next page is read, matches arrive that would rank first and last
            # (and, by sort=recent, come newest); they also push the oldest out of the
            # relevance window.
            n = len(arrived)
            page, *new = await asyncio.gather(
                nxt,
                add(100 + n, "knife knife knife knife", "KNIFE"),
                add(101 + n, "nothing sharp", name="Mr Knife"),
            )
            arrived.extend(new)
        raise AssertionError("the pages never ended")

    for sort in ("recent", "relevance"):
        # What the first page's moment holds (the previous walk's arrivals included).
        expected = await ids(api, q="knife", sort=sort, limit=100)
        before = len(arrived)
        assert await walk_while_inserting(sort) == expected, sort
        assert len(arrived) - before == 6
    # The arrivals match and rank first now: pages started before them never showed them.
    assert set(arrived) <= set(await ids(api, q="knife", sort="recent", limit=100))
    assert not set(arrived) & matches
    assert set(await ids(api, q="knife", limit=5)) <= set(arrived)

    # A cursor belongs to its query.
    cursor = (await search(api, q="knife", limit=2))["next_cursor"]
    assert cursor is not None
    for other in (
        {"q": "knife", "grade": "E"},
        {"q": "sharp"},
        {"q": "knife", "sort": "recent"},
        {"q": "knife", "near": f"{lat},{lng},500"},
    ):
        r = await api.as_("dispatcher", "GET", "/api/search", params={**other, "cursor": cursor})
        assert "cursor" in fields(r), other
    # The same query with the cursor: the next page (limit may change).
    page2 = await search(api, q="knife", limit=3, cursor=cursor)
    assert len(page2["results"]) == 3
    # A cursor edited inside but keeping its query's fingerprint: a 422, never a 500.
    for sort in ("relevance", "recent"):
        real = (await search(api, q="knife", sort=sort, limit=2))["next_cursor"]
        good = decode_cursor(real)
        for edit in (
            {"m": None},
            {"m": "x"},
            {"i": "9" * 25},
            {"r": "nan"},
            {"r": [1]},
            {"c": "yesterday"},
            {"c": "2026-12-02T10:00:00"},
        ):
            forged = {k: v for k, v in {**good, **edit}.items() if v is not None}
            r = await api.as_(
                "dispatcher",
                "GET",
                "/api/search",
                params={"q": "knife", "sort": sort, "cursor": encode_cursor(forged)},
            )
            # Only the fields this sort reads are checked; the others may pass untouched.
            assert r.status_code in (200, 422), (sort, edit, r.status_code, r.text)
            if r.status_code == 422:
                assert list(fields(r)) == ["cursor"], (sort, edit, r.text)
        missing = {k: v for k, v in good.items() if k != "i"}
        r = await api.as_(
            "dispatcher",
            "GET",
            "/api/search",
            params={"q": "knife", "sort": sort, "cursor": encode_cursor(missing)},
        )
        assert list(fields(r)) == ["cursor"], r.text


async def test_walk_every_page_once_in_order(api: Api) -> None:
    lat, lng = HACKNEY
    made = [
        int(
            (
                await incident(
                    api,
                    "KNIFE" if i % 4 == 0 else "THEFT",
                    at=offset(lat, lng, north_m=40 * i),
                    description=("a knife " * (1 + i % 2)) + "was seen",
                )
            )["id"]
        )
        for i in range(7)
    ]
    unmatched = await incident(api, at=CAMDEN, description="not this one")
    for sort in ("recent", "relevance"):
        everything = [r["id"] for r in (await search(api, q="knife", sort=sort))["results"]]
        assert set(everything) == set(made)
        for limit in (2, 3):
            assert await walk(api, q="knife", sort=sort, limit=limit) == everything, (sort, limit)
    assert await walk(api, q="knife", sort="recent", limit=2) == made[::-1]
    # Filters only: newest first, paged the same way.
    assert await walk(api, limit=2, near=f"{lat},{lng},1000") == made[::-1]
    assert await walk(api, limit=2) == [unmatched["id"], *made[::-1]]


async def test_bad_parameters_are_a_422_naming_the_parameter(api: Api) -> None:
    await incident(api, at=TRAFALGAR, description="a knife")
    t = datetime(2026, 11, 1, 10, tzinfo=UTC)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"near": "51.5,-0.12"}, "near"),
        ({"near": "51.5,-0.12,100,4"}, "near"),
        ({"near": "north,west,100"}, "near"),
        ({"near": "51.5,-0.12,nan"}, "near"),
        ({"near": "95,-0.12,100"}, "near"),
        ({"near": "51.5,-0.12,0"}, "near"),
        ({"near": "51.5,-0.12,5001"}, "near"),
        ({"grade": "Z"}, "grade"),
        ({"grade": "I;S"}, "grade"),
        ({"type": "DOMESTIC,NOPE"}, "type"),
        ({"status": "active"}, "status"),
        ({"status": "open,closed"}, "status"),
        ({"area": "Atlantis"}, "area"),
        ({"ward": "Nowhere"}, "ward"),
        ({"ward": "Abbey"}, "ward"),  # a name several boroughs' wards share
        ({"unit": "ZZ99"}, "unit"),
        ({"from": t.isoformat(), "to": t.isoformat()}, "to"),
        ({"from": t.isoformat(), "to": (t - timedelta(hours=1)).isoformat()}, "to"),
        ({"from": "2026-11-01T10:00:00"}, "from"),
        ({"to": "2026-11-01T10:00:00"}, "to"),
        ({"from": "yesterday"}, "from"),
        ({"q": "the"}, "q"),
        ({"q": "the and of"}, "q"),
        ({"q": "x" * 301}, "q"),
        ({"sort": "relevance"}, "sort"),
        ({"sort": "oldest", "q": "knife"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"phone": "12"}, "phone"),
        ({"phone": "call me"}, "phone"),
        ({"postcode": "QQ"}, "postcode"),
        ({"postcode": "SE1 7PB X"}, "postcode"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "bnVsbA"}, "cursor"),  # base64 of JSON null
    ]
    for params, field in cases:
        r = await api.as_("dispatcher", "GET", "/api/search", params=params)
        assert r.status_code == 422, (params, r.text)
        assert field in fields(r), (params, r.json())


async def test_roles(api: Api) -> None:
    await incident(api, at=TRAFALGAR, description="a knife")
    for user in ("handler", "dispatcher", "supervisor", "admin"):
        assert len((await search(api, user, q="knife"))["results"]) == 1
    r = await api.as_("unit", "GET", "/api/search", params={"q": "knife"})
    assert r.status_code == 403, r.text
    r = await api.client.get("/api/search", params={"q": "knife"})
    assert r.status_code == 401, r.text
