"""A console that fell behind gets the batch frames that queued up as one frame."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from cad.events.hub import Delivery, batch_frame, encode_event
from cad.events.router import coalesced
from cad.events.writer import Event


def _event(seq: int) -> Event:
    return Event(seq, datetime.now(UTC), "incident.created", seq, None, "t", {"n": seq})


def _batch(*seqs: int) -> Delivery:
    events = tuple(_event(s) for s in seqs)
    return Delivery(events, batch_frame([encode_event(e) for e in events]), seqs[-1], batch=True)


def test_queued_batches_become_one_frame_in_seq_order() -> None:
    out = coalesced([_batch(1, 2), _batch(3), _batch(5, 8)])
    assert len(out) == 1
    merged = out[0]
    assert merged is not None and merged.upto == 8
    assert [e.seq for e in merged.events] == [1, 2, 3, 5, 8]
    frame = orjson.loads(merged.payload)
    assert frame["type"] == "batch"
    assert [e["seq"] for e in frame["events"]] == [1, 2, 3, 5, 8]


def test_single_event_frames_and_the_close_marker_are_left_alone() -> None:
    one = _event(4)
    single = Delivery((one,), encode_event(one), 4)
    out = coalesced([_batch(1), single, _batch(5), None, _batch(6)])
    assert out[1] is single and out[3] is None
    assert [d.upto for d in out if d is not None] == [1, 4, 5, 6]
