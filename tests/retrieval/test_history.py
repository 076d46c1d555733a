"""History while a call is taken: previous incidents at the place, previous calls from the
phone; the same on an incident (only what came before it) and on a unit's job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Api
from tests.intake._support import offset
from tests.retrieval._support import (
    CAMDEN,
    EALING,
    GREENWICH,
    HACKNEY,
    LAMBETH,
    LONDON,
    assign,
    backdate_call,
    backdate_incident,
    call,
    incident,
    london_day,
    ok,
)


def late_evening(now: datetime, days: range) -> datetime:
    """23:30 UTC on the latest of those days ago that is already the next day in London
    (summer time), so the history line's date shows it is London's; failing that, any."""
    for k in days:
        t = (now - timedelta(days=k)).replace(hour=23, minute=30, second=0, microsecond=0)
        if t.astimezone(LONDON).date() != t.date():
            return t
    return (now - timedelta(days=days[0])).replace(hour=23, minute=30, second=0, microsecond=0)


async def preview(api: Api, **body: Any) -> dict[str, Any]:
    out: dict[str, Any] = await ok(
        await api.as_(
            "handler", "POST", "/api/calls/grade-preview", json={"incident_type": "ASB", **body}
        )
    )
    return out


async def test_preview_shows_history_of_the_place_and_the_phone(api: Api) -> None:
    now = datetime.now(UTC)
    lat, lng = CAMDEN
    other_phone = {"name": "Someone Else", "phone": "020 7946 0001"}
    at40 = await incident(api, "DOMESTIC", at=offset(lat, lng, north_m=40), caller=other_phone)
    at20 = await incident(api, "THEFT", at=offset(lat, lng, east_m=-20), caller=other_phone)
    await incident(api, "THEFT", at=offset(lat, lng, east_m=80), caller=other_phone)  # too far
    old = await incident(api, "THEFT", at=offset(lat, lng, north_m=10), caller=other_phone)
    last = late_evening(now, range(2, 80))
    await backdate_incident(api, at40["id"], last)
    await backdate_incident(api, at20["id"], last - timedelta(days=3))
    await backdate_incident(api, old["id"], now - timedelta(days=100))
    await ok(
        await api.as_(
            "dispatcher", "POST", f"/api/incidents/{at20['id']}/close", json={"result_code": "NFA"}
        )
    )

    # Calls from one phone, given in different formats, far from the place.
    first = await call(
        api, "DOMESTIC", at=HACKNEY, caller={"name": "Jane Smith", "phone": "07700 900123"}
    )
    advice = await call(
        api,
        "ADVICE",
        at=GREENWICH,
        outcome="advice",
        caller={"name": "Jane Doe", "phone": "0044 7700 900123"},
    )
    newest = await call(
        api, "THEFT", at=LAMBETH, caller={"name": "", "phone": "+44 (0)7700 900123"}
    )
    too_old = await call(
        api, "THEFT", at=EALING, caller={"name": "Old Name", "phone": "07700900123"}
    )
    await call(api, "THEFT", at=EALING, caller={"name": "Not Her", "phone": "07700 900124"})
    await backdate_incident(api, first["incident"]["id"], now - timedelta(days=5))
    await backdate_call(api, advice["call"]["id"], now - timedelta(days=2))
    await backdate_incident(api, too_old["incident"]["id"], now - timedelta(days=40))

    out = await preview(
        api, location={"lat": lat, "lng": lng}, caller={"name": "", "phone": "+44 7700 900123"}
    )
    h = out["history"]
    place = h["location"]
    assert (place["count"], place["radius_m"], place["days"]) == (2, 50, 90)
    assert [(i["id"], i["distance_m"]) for i in place["items"]] == [
        (at40["id"], 40),
        (at20["id"], 20),
    ]
    assert [(i["outcome"], i["type_name"], i["ref"]) for i in place["items"]] == [
        ("pending", "Domestic incident", at40["ref"]),
        ("NFA", "Theft", at20["ref"]),
    ]
    assert h["line"] == f"2 previous incidents here; last: Domestic incident, {london_day(last)}"

    phone = h["caller"]
    assert (phone["count"], phone["days"]) == (3, 30)
    assert [i["call_id"] for i in phone["items"]] == [
        newest["call"]["id"],
        advice["call"]["id"],
        first["call"]["id"],
    ]
    got = phone["items"][1]
    assert (got["incident_id"], got["ref"], got["outcome"], got["type_name"]) == (
        None,
        None,
        "advice",
        "Advice or referral to another agency",
    )
    assert phone["items"][2]["outcome"] == "pending"
    assert phone["items"][2]["ref"] == first["incident"]["ref"]
    # The newest call gave no name: the name most recently given is offered.
    assert phone["last_name"] == "Jane Doe"
    day = london_day(newest["call"]["created_at"])
    assert h["caller_line"] == f"3 calls from this phone in 30 days; last: Theft, {day}"

    # Each part only with what it needs; nothing known is no line.
    alone = (await preview(api, location={"lat": lat, "lng": lng}))["history"]
    assert alone["caller"] is None and alone["location"]["count"] == 2
    alone = (await preview(api, caller={"phone": "07700900123"}))["history"]
    assert alone["location"] is None and alone["line"] is None
    assert alone["caller"]["count"] == 3
    fresh = (
        await preview(
            api,
            location={"lat": EALING[0] + 0.01, "lng": EALING[1]},
            caller={"phone": "0123 456 789"},
        )
    )["history"]
    assert (fresh["location"]["count"], fresh["caller"]["count"]) == (0, 0)
    assert (fresh["line"], fresh["caller_line"], fresh["caller"]["last_name"]) == (None, None, None)


async def test_an_incident_and_a_units_job_show_only_what_came_before(api: Api) -> None:
    lat, lng = GREENWICH
    jane = {"name": "Jane Smith", "phone": "07700 900123"}
    first = await incident(api, "DOMESTIC", at=(lat, lng), caller=jane)
    second = await incident(
        api, "THEFT", at=offset(lat, lng, north_m=10), caller={**jane, "phone": "+447700900123"}
    )
    third = await incident(api, "THEFT", at=offset(lat, lng, north_m=15), caller=jane)
    # A later caller about the second incident, from the same phone.
    await call(api, "THEFT", link_to=second["id"], caller=jane, location=None)

    async def history(inc: dict[str, Any]) -> dict[str, Any]:
        detail = await ok(await api.as_("dispatcher", "GET", f"/api/incidents/{inc['id']}"))
        out: dict[str, Any] = detail["history"]
        return out

    h = await history(first)
    assert (h["location"]["count"], h["caller"]["count"]) == (0, 0)
    assert (h["line"], h["caller_line"]) == (None, None)
    h = await history(second)
    assert [i["id"] for i in h["location"]["items"]] == [first["id"]]
    assert [i["incident_id"] for i in h["caller"]["items"]] == [first["id"]]
    day = london_day(first["created_at"])
    assert h["line"] == f"1 previous incident here; last: Domestic incident, {day}"
    assert h["caller_line"] == f"1 call from this phone in 30 days; last: Domestic incident, {day}"
    h = await history(third)
    assert [i["id"] for i in h["location"]["items"]] == [second["id"], first["id"]]
    # The linked call came after the third incident: not part of its history.
    assert [i["incident_id"] for i in h["caller"]["items"]] == [second["id"], first["id"]]

    me = await ok(await api.as_("unit", "GET", "/api/units/me"))
    assert (me["callsign"], me["job"]) == ("CW11", None)
    await assign(api, second["id"], "CW11")
    job = (await ok(await api.as_("unit", "GET", "/api/units/me")))["job"]
    assert job["incident"]["id"] == second["id"]
    assert job["history_line"] == f"1 previous incident here; last: Domestic incident, {day}"
