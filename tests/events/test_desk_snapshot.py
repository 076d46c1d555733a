"""A desk's snapshot holds what its filtered stream streams: its boroughs' incidents and
units, true counts of them, and a 422 naming the field for a borough that does not exist."""

from __future__ import annotations

from tests.conftest import Api, call_body

LAMBETH = (51.4952, -0.1150)  # Kennington
CAMDEN = (51.5390, -0.1426)  # Camden Town


async def _area(api: Api, lat: float, lng: float) -> str:
    code = api.state.areas.area_for(lat, lng)
    assert code is not None
    return str(code.code)


async def test_the_open_board_and_units_for_a_desk(api: Api) -> None:
    lambeth, camden = await _area(api, *LAMBETH), await _area(api, *CAMDEN)
    made = {}
    for name, (lat, lng) in (("lambeth", LAMBETH), ("camden", CAMDEN)):
        r = await api.as_("handler", "POST", "/api/calls", json=call_body("BURGLARY", lat, lng))
        assert r.status_code == 201, r.text
        made[name] = r.json()["incident"]["id"]

    everything = (await api.as_("dispatcher", "GET", "/api/incidents/open")).json()
    desk = (await api.as_("dispatcher", "GET", f"/api/incidents/open?areas={lambeth}")).json()
    ids = {i["id"] for i in desk["incidents"]}
    assert made["lambeth"] in ids and made["camden"] not in ids
    assert {i["area_code"] for i in desk["incidents"]} <= {lambeth, None}
    assert desk["counts"]["open"] == len(desk["incidents"]) < everything["counts"]["open"]
    both = (
        await api.as_("dispatcher", "GET", f"/api/incidents/open?areas={camden},{lambeth}")
    ).json()
    assert {made["lambeth"], made["camden"]} <= {i["id"] for i in both["incidents"]}

    units = (await api.as_("dispatcher", "GET", "/api/units")).json()
    mine = (await api.as_("dispatcher", "GET", f"/api/units?areas={lambeth}")).json()
    assert 0 < len(mine) < len(units)
    on_job_here = {u["id"] for u in mine if u.get("incident_id") in ids}
    assert all(u["area_code"] in (lambeth, None) or u["id"] in on_job_here for u in mine)
    assert {u["id"] for u in units if u["area_code"] == lambeth} <= {u["id"] for u in mine}

    for url in ("/api/incidents/open?areas=NOPE", f"/api/units?areas={lambeth},NOPE"):
        r = await api.as_("dispatcher", "GET", url)
        assert r.status_code == 422, (url, r.text)
        assert r.json()["errors"][0]["field"] == "areas", r.text
