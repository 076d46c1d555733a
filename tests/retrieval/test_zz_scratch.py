from tests.conftest import Api, call_body


async def test_scratch(api: Api) -> None:
    async def post(body):
        r = await api.as_("handler", "POST", "/api/calls", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    a = await post(call_body("RTC_DAMAGE", description="cars bumped"))
    b = await post(call_body("THEFT", lat=51.527794, lng=-0.200242, description="bag taken"))
    b2 = await post(call_body("THEFT", location={"address": "Harrow Road"}, description="bag taken"))
    c = await post(call_body("THEFT", lat=51.50, lng=-0.13, description="phone taken"))
    await api.as_("dispatcher", "POST", f"/api/incidents/{c['incident']['id']}/remarks", json={"text": "suspect ran down the road"})
    d = await post(call_body("THEFT", lat=51.51, lng=-0.14, description="wallet", caller={"name": "Rhoda Road", "phone": "07700 900111"}))
    e = await post(call_body("THEFT", lat=51.51, lng=-0.15, description="He said <img src=x onerror=alert(1)> the \x02knife\x03 <b>bold</b> & <script>x</script> knife"))
    for x in (a, b, b2, c, d):
        print(x["incident"]["address_line"], x["incident"].get("postcode"))
    r = await api.as_("dispatcher", "GET", "/api/search", params={"q": "road"})
    for x in r.json()["results"]:
        print(x["ref"], x["type_code"], x["rank"], x["snippet"])
    r = await api.as_("dispatcher", "GET", "/api/search", params={"q": "knife"})
    for x in r.json()["results"]:
        print(x["ref"], x["type_code"], x["rank"], x["snippet"])
    r = await api.as_("handler", "POST", "/api/calls", json=call_body("ADVICE", outcome="advice", caller={"name": "Zed", "phone": "07700 900222"}))
    print(r.status_code, r.text[:300])
    r = await api.as_("handler", "POST", "/api/calls/grade-preview", json={"incident_type": "ASB", "caller": {"phone": "07700900222"}})
    print(r.json()["history"])
    r = await api.as_("dispatcher", "GET", "/api/search", params={"q": "the"})
    print(r.status_code, r.text)
    r = await api.as_("dispatcher", "GET", "/api/search", params={"grade": "Z"})
    print(r.status_code, r.text)
    r = await api.as_("dispatcher", "GET", "/api/search", params={"from": "2026-01-01T00:00:00"})
    print(r.status_code, r.text)
    r = await api.as_("unit", "GET", "/api/units/me")
    print(r.status_code, r.text[:500])
    r = await api.as_("dispatcher", "GET", "/api/units", params={"status": "available"})
    print([u["callsign"] for u in r.json()][:30])
