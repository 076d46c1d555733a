"""Postcodes (this file clones the template with the London postcodes: see GAZETTEER_PATHS):
search by full postcode, sector and district; markers on a postcode."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tests.conftest import Api
from tests.intake._support import events_for
from tests.retrieval._support import call, fields, ok, table_counts

REVIEW = (date.today() + timedelta(days=90)).isoformat()


async def at(api: Api, postcode: str, type_code: str = "THEFT", **extra: Any) -> dict[str, Any]:
    return await call(api, type_code, location={"address": postcode}, **extra)


async def ids(api: Api, **params: Any) -> list[int]:
    out = await ok(await api.as_("dispatcher", "GET", "/api/search", params=params))
    return [r["id"] for r in out["results"]]


async def test_postcode_search_and_postcode_markers(api: Api) -> None:
    pb = (await at(api, "SE1 7PB", "DOMESTIC"))["incident"]
    qa = (await at(api, "se1 7qa"))["incident"]
    district = (await at(api, "SE1 9AA"))["incident"]
    se11 = (await at(api, "SE11 5AA"))["incident"]
    assert [i["postcode"] for i in (pb, qa, district, se11)] == [
        "SE1 7PB",
        "SE1 7QA",
        "SE1 9AA",
        "SE11 5AA",
    ]
    # A point without a postcode typed takes the nearest one.
    near = await call(api, "THEFT", at=(pb["lat"], pb["lng"]))
    assert near["incident"]["postcode"] == "SE1 7PB"

    assert await ids(api, postcode="se1 7pb") == [near["incident"]["id"], pb["id"]]
    assert await ids(api, postcode="SE17PB") == [near["incident"]["id"], pb["id"]]
    assert await ids(api, postcode="SE1 7") == [near["incident"]["id"], qa["id"], pb["id"]]
    # The district SE1 is not SE11 (nor SE10, SE17…).
    assert await ids(api, postcode="SE1") == [
        near["incident"]["id"],
        district["id"],
        qa["id"],
        pb["id"],
    ]
    assert await ids(api, postcode="se11") == [se11["id"]]
    assert await ids(api, postcode="SE11 5") == [se11["id"]]
    assert await ids(api, postcode="SE1 7", type="DOMESTIC") == [pb["id"]]
    assert await ids(api, postcode="SE1 8") == []
    result = (
        await ok(await api.as_("dispatcher", "GET", "/api/search", params={"postcode": "SE1 9AA"}))
    )["results"][0]
    assert result["postcode"] == "SE1 9AA" and "SE1 9AA" in result["address_line"]
    for bad in ("QQ", "SE1 7PB X", "12345"):
        r = await api.as_("dispatcher", "GET", "/api/search", params={"postcode": bad})
        assert "postcode" in fields(r), bad

    # A marker on a postcode: matches a call there (by the postcode typed, or the point's
    # nearest postcode), not one next door.
    before = await table_counts(api, "markers", "events")
    body = {"category": "hazmat", "text": "Gas cylinders in the yard", "review_at": REVIEW}
    r = await api.as_("supervisor", "POST", "/api/markers", json={**body, "postcode": "SE1 7ZZ"})
    assert "postcode" in fields(r) and "gazetteer" in r.json()["detail"]
    assert await table_counts(api, "markers", "events") == before
    marker = await ok(
        await api.as_("supervisor", "POST", "/api/markers", json={**body, "postcode": "se17pb"}),
        201,
    )
    assert (marker["postcode"], marker["lat"], marker["phone"]) == ("SE1 7PB", None, None)

    async def matched(location: dict[str, Any]) -> list[tuple[int, str]]:
        out = await ok(
            await api.as_(
                "handler",
                "POST",
                "/api/calls/grade-preview",
                json={"incident_type": "ASB", "location": location},
            )
        )
        return [(m["id"], m["match"]) for m in out["markers"]]

    assert await matched({"address": "SE1 7PB"}) == [(marker["id"], "postcode")]
    assert await matched({"lat": pb["lat"], "lng": pb["lng"]}) == [(marker["id"], "postcode")]
    assert await matched({"address": "SE1 7QA"}) == []
    answer = await at(api, "SE1 7PB", "ASB")
    assert [m["id"] for m in answer["markers"]] == [marker["id"]]
    events = await events_for(api.settings.database_url, answer["incident"]["id"])
    recorded = [e["data"]["markers"] for e in events if e["type"] == "incident.markers"]
    assert [[m["id"] for m in ms] for ms in recorded] == [[marker["id"]]]
    listed = await ok(
        await api.as_("handler", "GET", "/api/markers", params={"postcode": "se1 7pb"})
    )
    assert [m["id"] for m in listed["markers"]] == [marker["id"]]
