"""Subscription filters: which events of the log a console asked for.

Matching depends on the event alone (its type, and the areas and grade recorded with it
when it was written), never on the incident or unit as they stand now. So the live
stream, catch-up over the WebSocket and ``/api/events`` give exactly the same set for the
same filter, and resuming with ``since=`` neither skips nor repeats.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from cad.errors import Invalid
from cad.events.writer import Event

# The kinds of event the service writes: the part of ``type`` before the first dot. Kept
# by hand from the append_event call sites (grep "append_event\|emit(" in cad, dispatch):
# a filter naming anything else is a typo, refused rather than silently matching nothing.
KINDS = frozenset({"alarm", "areas", "auth", "call", "emergency", "incident", "marker", "unit"})


# Account events (sessions ended, lockouts) are for supervisors and administrators only:
# a rule of the role, applied beside any filter the console asks for.
ACCOUNT_EVENTS = "auth."


def kind_of(event_type: str) -> str:
    return event_type.split(".", 1)[0]


def is_account_event(event: Event) -> bool:
    return event.type.startswith(ACCOUNT_EVENTS)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """None on a dimension: no restriction. Frozen and hashable: the hub groups the
    sockets that share a filter and works out each event's match once per group."""

    areas: frozenset[str] | None = None
    grades: frozenset[str] | None = None
    kinds: frozenset[str] | None = None

    def matches(self, event: Event) -> bool:
        if self.kinds is not None and kind_of(event.type) not in self.kinds:
            return False
        # No areas (about neither an incident nor a unit, or neither has an area) is
        # global; None was written before areas were recorded. Both are shown to every
        # area: a filter may hide what is elsewhere, never what cannot be placed.
        if self.areas is not None and event.areas and self.areas.isdisjoint(event.areas):
            return False
        if (
            self.grades is not None
            and event.incident_id is not None
            and event.grade is not None
            and event.grade not in self.grades
        ):
            return False
        return True

    def describe(self) -> dict[str, list[str] | None]:
        """As the hello frame echoes it: sorted lists, null for no restriction."""
        return {
            "areas": _sorted(self.areas),
            "grades": _sorted(self.grades),
            "kinds": _sorted(self.kinds),
        }


NO_FILTER = EventFilter()


class FilterError(Invalid):
    """A value the filter does not know; ``field`` is the query parameter. Over HTTP it is
    the 422 naming the field; the WebSocket closes 4422 with the same words."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def parse_filter(
    areas: str | None,
    grades: str | None,
    kinds: str | None,
    *,
    known_area: Callable[[str], Any],
    known_grades: Container[str],
) -> EventFilter:
    """The filter from the query strings (comma-separated; empty or absent: no
    restriction). Raises FilterError naming the first unknown value."""
    return EventFilter(
        areas=_parse("areas", areas, lambda c: known_area(c) is not None, "unknown area code"),
        grades=_parse("grades", grades, lambda g: g in known_grades, "unknown grade"),
        kinds=_parse("kinds", kinds, lambda k: k in KINDS, "unknown kind"),
    )


def _parse(
    field: str, text: str | None, known: Callable[[str], bool], unknown: str
) -> frozenset[str] | None:
    values = frozenset(v.strip() for v in (text or "").split(",") if v.strip())
    for value in sorted(values):
        if not known(value):
            shown = value if len(value) <= 40 else value[:40] + "…"
            raise FilterError(field, f"{unknown} {shown!r}")
    return values or None


def _sorted(values: frozenset[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)
