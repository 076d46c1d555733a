from tests.conftest import Api, call_body


async def test_smoke(api: Api) -> None:
    body = call_body("DOMESTIC", description="She says he has a knife and is shouting")
    body["caller"] = {"name": "Jane Smith", "phone": "+44 7700 900123"}
    r = await api.as_("handler", "POST", "/api/calls", json=body)
    assert r.status_code == 201, r.text
    inc = r.json()["incident"]
    print(inc["ref"], inc.get("postcode"))
    r = await api.as_("supervisor", "POST", "/api/markers", json={"category": "firearms", "text": "Licensed shotgun holder", "lat": 51.5074, "lng": -0.1278, "radius_m": 30, "review_at": "2027-06-01"})
    assert r.status_code == 201, r.text
    print(r.json())
    r = await api.as_("supervisor", "POST", "/api/markers", json={"category": "vulnerable_person", "text": "Caller has dementia", "phone": "07700900123", "review_at": "2027-06-01"})
    assert r.status_code == 201, r.text
    r = await api.as_("handler", "POST", "/api/calls/grade-preview", json={"incident_type": "ASB", "location": {"lat": 51.5075, "lng": -0.1278}, "caller": {"phone": "07700 900123"}})
    assert r.status_code == 200, r.text
    print(r.json())
    r = await api.as_("handler", "POST", "/api/calls", json=call_body("ASB", lat=51.5075))
    assert r.status_code == 201, r.text
    print(r.json()["grading"], r.json()["markers"])
    iid = r.json()["incident"]["id"]
    r = await api.as_("dispatcher", "POST", f"/api/incidents/{iid}/remarks", json={"text": "Neighbour reports a barking dog"})
    for q in ["knife", "dog", inc["ref"].lower().replace("cad ", ""), "smith"]:
        r = await api.as_("dispatcher", "GET", "/api/search", params={"q": q})
        assert r.status_code == 200, r.text
        print(q, [(x["ref"], x["matched"], x["rank"], x["snippet"]) for x in r.json()["results"]])
    for params in [{"phone": "07700900123"}, {"near": "51.5074,-0.1278,100"}, {"grade": "I", "status": "open"}, {"area": "Westminster"}, {"postcode": "WC2N"}, {"limit": 1}]:
        r = await api.as_("dispatcher", "GET", "/api/search", params=params)
        assert r.status_code == 200, r.text
        print(params, [x["ref"] for x in r.json()["results"]], r.json()["next_cursor"])
    r = await api.as_("dispatcher", "GET", f"/api/incidents/{iid}")
    print(r.json()["history"], r.json()["markers"])


async def test_preview_without_type(api: Api) -> None:
    r = await api.as_("handler", "POST", "/api/calls/grade-preview", json={"caller": {"phone": "07700 900123"}, "location": {"lat": 51.5, "lng": -0.12}})
    assert r.status_code == 200, r.text
    assert r.json()["grade"] is None and r.json()["history"]["caller"] is not None
