"""The study's clock and queues on logs small enough to work out by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cad.grading import load_catalogue, load_rules, load_scheme
from cad.state import plans_from_catalogue
from cad.study.report import summarise
from cad.study.sim import OnSceneModel, SimResult, Simulation, StudyConfig
from cad.study.sources import CallRecord, FleetUnit
from dispatch.status import UnitStatus
from gis.eta import EtaModel, KolesarEta
from gis.projection import Projector

PROJ = Projector()
START = datetime(2017, 1, 1, 0, 0, tzinfo=UTC)
Y = 180_000.0


class LinearEta:
    """60 s to mobilise, then 10 m/s: easy to work out by hand."""

    def eta_s(self, distance_m: float, unit_type: str) -> float:
        return 60 + distance_m / 10

    def min_eta_s(self, distance_m: float) -> float:
        return 60 + distance_m / 10


def at(x: float) -> tuple[float, float]:
    return PROJ.to_wgs84(x, Y)


def call(
    ref: str, t: float, x: float, itype: str = "CONCERN_WELFARE", **risk: object
) -> CallRecord:
    lat, lng = at(x)
    return CallRecord(ref, t, lat, lng, itype, dict(risk))


def unit(callsign: str, x: float, **kw: float) -> FleetUnit:
    lat, lng = at(x)
    return FleetUnit(callsign, "response_car", frozenset({"response"}), lat, lng, "A", **kw)


def simulate(
    calls: list[CallRecord],
    fleet: list[FleetUnit],
    eta: EtaModel | None = None,
    on_scene_s: float = 600.0,
    config: StudyConfig | None = None,
) -> tuple[Simulation, SimResult]:
    catalogue = load_catalogue()
    sim = Simulation(
        calls,
        fleet,
        start=START,
        catalogue=catalogue,
        scheme=load_scheme(),
        rules=load_rules(),
        plans=plans_from_catalogue(dict(catalogue), 3),
        eta=eta or LinearEta(),
        projector=PROJ,
        on_scene=OnSceneModel.fixed(on_scene_s),
        config=config or StudyConfig(),
    )
    return sim, sim.run()


def times(result: SimResult, ref: str) -> tuple[float | None, float | None, str]:
    inc = next(i for i in result.incidents if i.call.ref == ref)
    return inc.first_dispatch_s, inc.first_on_scene_s, inc.grade


def test_two_units_three_calls_third_waits_for_the_first_back() -> None:
    # A at 530 km, B at 540 km. Call 1 (1 km from A) takes A: 60 + 100 = 160 s; call 2
    # (1 km from B) at 10 s takes B, there at 170 s. Call 3 at 100 s, midway, finds no
    # one: A clears at 160 + 600 = 760, is back at base 160 s later (920), is sent from
    # there 5 km: 60 + 500 = 560 s, on scene at 1480.
    sim, result = simulate(
        [call("c1", 0, 531_000), call("c2", 10, 539_000), call("c3", 100, 535_000)],
        [unit("A", 530_000), unit("B", 540_000)],
    )
    assert times(result, "c1") == (0, 160, "S")
    assert times(result, "c2") == (10, 170, "S")
    d3, s3, _ = times(result, "c3")
    assert d3 == pytest.approx(920)
    assert s3 == pytest.approx(1480)
    sent = {
        i.call.ref: sorted(sim.units[u].state.callsign for u in i.attached)
        for i in result.incidents
    }
    assert sent == {"c1": ["A"], "c2": ["B"], "c3": ["A"]}
    # The queue held call 3 from 100 s until A was sent at 920 s.
    assert result.queue[0] == (100, {"S": 1})
    assert result.queue[1][0] == pytest.approx(920) and result.queue[1][1] == {}
    # B is back at base at 770 + 160 = 930, A after call 3: 1480 + 600 + 560 = 2640.
    assert result.end_s == pytest.approx(2640)
    assert all(u.state.status is UnitStatus.AVAILABLE for u in result.units)
    # Busy time counts over the log's span, [0, 100] s: A from 0, B from 10.
    assert sim.units[1].busy_s == pytest.approx(100)
    assert sim.units[2].busy_s == pytest.approx(90)

    summary = summarise(result)
    s = summary["grades"]["S"]
    assert s["calls"] == s["dispatched"] == 3
    # Nearest rank over [0, 0, 820] and [160, 160, 1380].
    assert s["received_to_dispatch_s"] == {"median": 0, "p90": pytest.approx(820)}
    assert s["received_to_on_scene_s"] == {"median": 160, "p90": pytest.approx(1380)}
    assert s["on_scene_within_target_pct"] == 100.0
    pending = [row["S"] for row in summary["queue"]["series"]]
    assert pending == [0, 1, 1, 1, 0, 0, 0, 0, 0]  # every 300 s up to 2400
    assert summary["utilisation"]["by_unit_type"]["response_car"]["utilisation_pct"] == 95.0


def test_referred_closes_without_dispatch() -> None:
    sim, result = simulate([call("r", 0, 531_000, "ADVICE")], [unit("A", 530_000)])
    inc = result.incidents[0]
    assert inc.grade == "R"
    assert inc.closed_s == 0 and inc.dispatches == 0 and inc.first_dispatch_s is None
    assert sim.units[1].state.status is UnitStatus.AVAILABLE and sim.units[1].busy_s == 0


def test_grading_rules_decide_the_grade() -> None:
    # A welfare concern is Significant by default; harm high makes it Immediate (R6).
    _, result = simulate(
        [call("s", 0, 531_000), call("i", 0, 539_000, harm="high")],
        [unit("A", 530_000), unit("B", 540_000)],
    )
    assert times(result, "s")[2] == "S" and times(result, "i")[2] == "I"


def test_extended_is_dispatched_after_the_appointment_delay() -> None:
    _, result = simulate(
        [call("e", 50, 531_000, "BURGLARY")],
        [unit("A", 530_000)],
        config=StudyConfig(e_delay_s=3600),
    )
    assert times(result, "e") == (3650, 3810, "E")


def test_immediate_call_diverts_a_unit_from_lower_grade_work() -> None:
    # A is sent to the S call at 0 (there at 160). At 50 s an I call 500 m from base has no
    # available unit: the engine diverts A (still planned from base: 60 + 50 = 110 s, so
    # there at 160). A clears at 760, is back 110 s later (870), then goes to the S call
    # again: 160 s, on scene at 1030.
    _, result = simulate(
        [call("s", 0, 531_000), call("i", 50, 530_500, harm="high")], [unit("A", 530_000)]
    )
    assert times(result, "i") == (50, 160, "I")
    d, s, _ = times(result, "s")
    assert d == 0  # first dispatched at once, then diverted away
    assert s == pytest.approx(1030)
    assert result.incidents[0].diverted_away == 1


def test_arrival_is_dispatch_plus_the_kolesar_eta() -> None:
    eta = KolesarEta()
    _, result = simulate([call("c", 30, 533_000)], [unit("A", 530_000)], eta=eta)
    assert times(result, "c") == (30, 30 + round(eta.eta_s(3000, "response_car")), "S")


def test_a_unit_off_shift_is_not_sent_until_its_shift_starts() -> None:
    # A is on duty 01:00-09:00; the call at 00:10 waits until 01:00, then 160 s.
    _, result = simulate(
        [call("c", 600, 531_000)], [unit("A", 530_000, shift_start_h=1, shift_end_h=9)]
    )
    assert times(result, "c") == (3600, 3760, "S")
