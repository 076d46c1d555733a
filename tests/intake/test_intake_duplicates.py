"""Duplicate calls: offered candidates, linking a call, merging incidents (both audited)."""

from __future__ import annotations

from tests.conftest import Api, call_body
from tests.intake._support import counts, db, events_for, new_incident, offset, post_call

HERE = (51.5200, -0.1000)


async def test_candidates_ranked_and_filtered(api: Api) -> None:
    near_same = await new_incident(api, call_body("VIOLENCE", *offset(*HERE, north_m=100)))
    far_related = await new_incident(api, call_body("KNIFE", *offset(*HERE, east_m=300)))
    distant = await new_incident(api, call_body("VIOLENCE", *offset(*HERE, north_m=2000)))
    closed = await new_incident(api, call_body("VIOLENCE", *offset(*HERE, north_m=-50)))
    r = await api.as_(
        "dispatcher", "POST", f"/api/incidents/{closed['id']}/close", json={"result_code": "NFA"}
    )
    assert r.status_code == 200, r.text

    r = await post_call(api, call_body("VIOLENCE", *HERE))
    assert r.status_code == 201, r.text
    dups = r.json()["possible_duplicates"]
    ids = [d["id"] for d in dups]
    assert ids == [near_same["id"], far_related["id"]], dups
    assert dups[0]["score"] > dups[1]["score"] > 0
    assert abs(dups[0]["distance_m"] - 100) <= 3 and abs(dups[1]["distance_m"] - 300) <= 3
    assert dups[0]["ref"] == near_same["ref"] and dups[0]["age_s"] >= 0
    assert distant["id"] not in ids and closed["id"] not in ids
    # The new incident's created event records what the handler was offered.
    assert r.json()["incident"]["id"] not in ids


async def test_same_distance_same_type_beats_related(api: Api) -> None:
    related = await new_incident(api, call_body("ROBBERY", *offset(*HERE, north_m=150)))
    same = await new_incident(api, call_body("VIOLENCE", *offset(*HERE, north_m=-150)))
    r = await post_call(api, call_body("VIOLENCE", *HERE))
    dups = r.json()["possible_duplicates"]
    assert [d["id"] for d in dups] == [same["id"], related["id"]], dups


async def test_a_call_from_the_same_phone_ranks_first(api: Api) -> None:
    def caller(phone: str, *where: float) -> dict[str, object]:
        body = call_body("VIOLENCE", *where)
        body["caller"] = {"name": "Caller", "phone": phone}
        return body

    # Mine is the older: on distance, type and age alone the other would rank first.
    mine = await new_incident(api, caller("07700 900002", *offset(*HERE, north_m=-150)))
    other = await new_incident(api, caller("07700 900001", *offset(*HERE, north_m=150)))
    r = await post_call(api, caller("07700 900002", *HERE))
    dups = r.json()["possible_duplicates"]
    assert [d["id"] for d in dups] == [mine["id"], other["id"]], dups
    assert dups[0]["score"] > dups[1]["score"]


async def test_the_same_phone_is_the_number_as_written(api: Api) -> None:
    """Read through the phone index, the same phone is still the same text: a number
    written another way is another caller here, and a number without digits (no index
    key) still matches itself."""

    def caller(phone: str, lat: float, lng: float) -> dict[str, object]:
        body = call_body("VIOLENCE", lat, lng)
        body["caller"] = {"name": "Caller", "phone": phone}
        return body

    for n, (mine_phone, other_phone) in enumerate(
        [("07700 900003", "+44 7700 900003"), ("()", "07700 900004")]
    ):
        here = offset(*HERE, east_m=3000 * (n + 1))
        mine = await new_incident(api, caller(mine_phone, *offset(*here, north_m=-150)))
        other = await new_incident(api, caller(other_phone, *offset(*here, north_m=150)))
        r = await post_call(api, caller(mine_phone, *here))
        dups = r.json()["possible_duplicates"]
        assert [d["id"] for d in dups] == [mine["id"], other["id"]], (mine_phone, dups)
        assert dups[0]["score"] > dups[1]["score"], dups


async def test_link_to_attaches_without_new_incident(api: Api, db_url: str) -> None:
    first = await new_incident(api, call_body("VIOLENCE", *HERE))
    before = await counts(db_url)
    body = call_body("KNIFE", *offset(*HERE, north_m=100), link_to=first["id"])
    r = await post_call(api, body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["call"]["outcome"] == "attached"
    assert out["incident"]["id"] == out["call"]["incident_id"] == first["id"]
    assert first["id"] not in [d["id"] for d in out["possible_duplicates"]]
    after = await counts(db_url)
    assert after["incidents"] == before["incidents"]
    assert after["calls"] == before["calls"] + 1

    detail = (await api.as_("dispatcher", "GET", f"/api/incidents/{first['id']}")).json()
    assert [c["outcome"] for c in detail["calls"]] == ["incident_created", "attached"]
    linked = [e for e in await events_for(db_url, first["id"]) if e["type"] == "call.linked"]
    assert len(linked) == 1
    assert linked[0]["actor"] == "call_handler:handler"
    assert linked[0]["data"]["call_id"] == out["call"]["id"]
    assert linked[0]["data"]["type_code"] == "KNIFE"
    # Linking does not change the incident's grade or status.
    assert detail["grade"] == first["grade"] and detail["status"] == first["status"]


async def test_merge_moves_calls_and_closes_source(api: Api, db_url: str) -> None:
    keep = await new_incident(api, call_body("VIOLENCE", *HERE))
    source = await new_incident(api, call_body("DOMESTIC", *offset(*HERE, east_m=80)))
    await post_call(api, call_body("DOMESTIC", *HERE, link_to=source["id"]))

    r = await api.as_(
        "handler",
        "POST",
        f"/api/incidents/{source['id']}/merge",
        json={"into_id": keep["id"], "reason": "same fight"},
    )
    assert r.status_code == 403  # call handlers link calls; dispatchers merge incidents
    r = await api.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{source['id']}/merge",
        json={"into_id": keep["id"], "reason": "same fight, two callers"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == keep["id"]

    async with db(db_url) as conn:
        src = await conn.fetchrow("SELECT * FROM incidents WHERE id = $1", source["id"])
        moved = await conn.fetchval("SELECT count(*) FROM calls WHERE incident_id = $1", keep["id"])
        left = await conn.fetchval(
            "SELECT count(*) FROM calls WHERE incident_id = $1", source["id"]
        )
    assert (src["status"], src["result_code"], src["merged_into"]) == (
        "closed",
        "MERGED",
        keep["id"],
    )
    assert src["closed_at"] is not None
    assert (moved, left) == (3, 0)

    merged = [e for e in await events_for(db_url, source["id"]) if e["type"] == "incident.merged"]
    merged_in = [
        e for e in await events_for(db_url, keep["id"]) if e["type"] == "incident.merged_in"
    ]
    assert len(merged) == len(merged_in) == 1
    for event in (merged[0], merged_in[0]):
        assert event["actor"] == "dispatcher:dispatcher"
        assert event["data"]["reason"] == "same fight, two callers"
        assert (event["data"]["from_id"], event["data"]["into_id"]) == (source["id"], keep["id"])
        assert event["data"]["calls_moved"] == 2

    # A merged incident cannot be merged, linked to or reopened.
    r = await api.as_(
        "dispatcher",
        "POST",
        f"/api/incidents/{source['id']}/reopen",
        json={"reason": "changed my mind"},
    )
    assert r.status_code == 409
    r = await post_call(api, call_body(link_to=source["id"]))
    assert r.status_code == 409


async def test_merge_refusals_write_nothing(api: Api, db_url: str) -> None:
    a = await new_incident(api, call_body("VIOLENCE", *HERE))
    closed = await new_incident(api, call_body("ADVICE", *HERE))
    before = await counts(db_url)
    for into, status in ((a["id"], 422), (closed["id"], 409), (999999, 404)):
        r = await api.as_(
            "dispatcher",
            "POST",
            f"/api/incidents/{a['id']}/merge",
            json={"into_id": into, "reason": "testing refusals"},
        )
        assert r.status_code == status, (into, r.text)
    r = await api.as_(
        "dispatcher", "POST", f"/api/incidents/{a['id']}/merge", json={"into_id": closed["id"]}
    )
    assert r.status_code == 422  # reason is required
    assert await counts(db_url) == before


async def test_subnormal_coordinates_do_not_break_the_duplicate_search(api: Api) -> None:
    """Found by fuzzing: an incident at lng 5e-324 then a call at lng 0 made PostgreSQL's
    float arithmetic raise 'underflow' (a 500). Distances are computed in Python now."""
    first = await post_call(api, call_body("VIOLENCE", 51.546875, 5e-324))
    assert first.status_code == 201, first.text
    second = await post_call(api, call_body("VIOLENCE", 51.546875, 0.0))
    assert second.status_code == 201, second.text
    dups = second.json()["possible_duplicates"]
    assert [d["id"] for d in dups] == [first.json()["incident"]["id"]]
    assert dups[0]["distance_m"] == 0
