"""Replay a real call log with locust (same parser as `cad replay`, no cad imports).

    locust -f loadtests/locust_replay.py --host URL --headless -u 20 -r 20 --run-time 120s \
        --replay-file ../shared/data/montgomery_911_sample.csv \
        --replay-start "2018-11-15 13:00" --replay-speed 60

Each user takes the next call off one shared schedule and sends it when its time comes;
the run quits by itself once the log is done. Use one process (no --processes): the
schedule lives in this process.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime
from typing import Any

import gevent
from locust import constant, events, task
from locust.exception import StopUser

from loadtests.locust_common import CadUser, new_key
from loadtests.sources import read_log, schedule, window

_queue: deque[tuple[float, Any, int]] = deque()
_state: dict[str, Any] = {"loaded": False, "t0": 0.0, "active": 0}


@events.test_start.add_listener
def _load(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    if options is None or not options.replay_file:
        raise SystemExit("locust_replay.py needs --replay-file")
    start = datetime.fromisoformat(options.replay_start) if options.replay_start else None
    calls = window(read_log(options.replay_file), start, options.replay_limit)
    _queue.clear()
    _queue.extend(schedule(calls, options.replay_speed))
    _state.update(loaded=True, t0=time.monotonic(), active=0)


class ReplayCaller(CadUser):
    username = "handler"
    wait_time = constant(0)

    def on_start(self) -> None:
        super().on_start()
        _state["active"] += 1

    def on_stop(self) -> None:
        _state["active"] -= 1

    @task
    def next_call(self) -> None:
        if not _queue:
            runner = self.environment.runner
            if _state["active"] <= 1 and runner is not None:
                gevent.spawn_later(0.5, runner.quit)
            raise StopUser()
        offset, call, copy = _queue.popleft()
        delay = _state["t0"] + offset - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
        key = new_key()
        self.post_call(call.body(tag=key), key, name="/api/calls (replay)")
