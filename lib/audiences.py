"""Audiences: a CleverTap profile query (event, date range, profile filters), counted and pulled.

CleverTap has no API that reads a dashboard segment's members, so an audience is a query paged
through the cursor export. Pages build and check the query here and record requests in the store:
a count (a task) or a pull (a list in state 'pulling'); the worker process does both (lib/pulls.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, UTC
from typing import Any
from collections.abc import Iterable

from lib import actions
from lib.access import OPERATOR, User, require
from lib.clevertap import CleverTapError
from lib.errors import UserError
from lib.lists import clean_name
from lib.store import Audience, ListRecord, Store, Task

DEFAULT_DAYS = 30
# Events every CleverTap project has, offered as suggestions; any other name can be typed.
SUGGESTED_EVENTS = ("App Launched", "App Installed", "Product Viewed", "Added to Cart", "Charged",
                    "App Uninstalled", "Notification Clicked")
# The operators of CleverTap's query language for profile_fields (the sandbox simulates these).
OPERATORS = ("equals", "not_equals", "contains", "greater_than", "less_than", "exists", "not_exists")
COUNT_TASK = "count_audience"


class PullError(UserError):
    """An audience definition cannot be used, or a pull cannot start; `message` says what to fix."""


@dataclass(frozen=True)
class ProfileFilter:
    name: str
    operator: str
    value: str | None

    def as_query(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": self.name, "operator": self.operator}
        if self.operator not in ("exists", "not_exists"):
            spec["value"] = self.value
        return spec


@dataclass(frozen=True)
class AudienceQuery:
    connection_id: int
    event_name: str
    from_date: date
    to_date: date
    filters: tuple[ProfileFilter, ...] = ()

    def profile_fields(self) -> list[dict[str, Any]]:
        return [f.as_query() for f in self.filters]

    def describe(self) -> str:
        text = f"{self.event_name}, {self.from_date:%Y-%m-%d} → {self.to_date:%Y-%m-%d}"
        for f in self.filters:
            value = f" {f.value}" if "exists" not in f.operator else ""
            text += f" · {f.name} {f.operator.replace('_', ' ')}{value}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"connection_id": self.connection_id, "event_name": self.event_name,
                "from_date": self.from_date.isoformat(), "to_date": self.to_date.isoformat(),
                "filters": [[f.name, f.operator, f.value] for f in self.filters]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AudienceQuery:
        return cls(int(data["connection_id"]), str(data["event_name"]), date.fromisoformat(data["from_date"]),
                   date.fromisoformat(data["to_date"]),
                   tuple(ProfileFilter(str(n), str(o), None if v is None else str(v)) for n, o, v in data["filters"]))

    @classmethod
    def from_audience(cls, audience: Audience) -> AudienceQuery:
        return cls(audience.connection_id, audience.event_name, date.fromisoformat(audience.from_date),
                   date.fromisoformat(audience.to_date),
                   tuple(ProfileFilter(f["name"], f["operator"], f.get("value")) for f in audience.filters))


def default_range(today: date | None = None) -> tuple[date, date]:
    """The last 30 days, ending today in UTC (CleverTap refuses dates in the future)."""
    end = today or datetime.now(UTC).date()
    return end - timedelta(days=DEFAULT_DAYS), end


def build_query(connection_id: int | None, event_name: str | None, from_date: date | None,
                to_date: date | None, filters: Iterable[tuple[str, str, str]] = ()) -> AudienceQuery:
    """Check what the form says and make a query of it. Blank filter rows are ignored.

    Raises:
        PullError: no connection or event, a reversed date range, a filter without name or value.
    """
    if connection_id is None:
        raise PullError("Choose a CleverTap connection.")
    event = (event_name or "").strip()
    if not event:
        raise PullError("Choose or type an event name (names are case-sensitive, e.g. App Launched).")
    if from_date is None or to_date is None:
        raise PullError("Choose a start and an end date.")
    if from_date > to_date:
        raise PullError(f"The start date {from_date:%Y-%m-%d} is after the end date {to_date:%Y-%m-%d}.")
    checked = []
    for name, operator, value in filters:
        name, value = (name or "").strip(), (value or "").strip()
        if not name and not value:
            continue
        if operator not in OPERATORS:
            raise PullError(f"Unknown operator {operator!r}: use one of {', '.join(OPERATORS)}.")
        if not name:
            raise PullError("A profile filter has a value but no property name.")
        if not value and operator not in ("exists", "not_exists"):
            raise PullError(f"The filter on {name} needs a value (or the operator 'exists').")
        checked.append(ProfileFilter(name, operator, value or None))
    return AudienceQuery(connection_id, event, from_date, to_date, tuple(checked))


def error_message(exc: CleverTapError) -> str:
    """The client's message, with what to check when CleverTap does not know the event."""
    if "invalid event" in (exc.server_message or "").lower():
        return f"{exc.message}: event names are case-sensitive, check the spelling (e.g. App Launched)."
    return exc.message


def save_audience(store: Store, query: AudienceQuery, name: str, *, user: User) -> Audience:
    require(user, OPERATOR, "Saving an audience")
    return store.save_audience(name=clean_name(name), connection_id=query.connection_id,
                               event_name=query.event_name, from_date=query.from_date.isoformat(),
                               to_date=query.to_date.isoformat(), filters=query.profile_fields())


# ---- requests to the worker process --------------------------------------------------------------
def request_count(store: Store, mode: str, query: AudienceQuery, *, user: User) -> Task:
    """Ask the worker to count the profiles a query matches (the same open question is asked once).

    Raises:
        NotAllowed: `user` is not an operator (counting is the first step of adding a list).
    """
    require(user, OPERATOR, "Counting an audience")
    args = query.to_json()
    key = f"{COUNT_TASK}:{mode}:{sorted(args.items())!r}"
    task = store.request_task(kind=COUNT_TASK, mode=mode, args=args, requested_by=user.email, dedupe_key=key)
    actions.record(store, user, "audience_counted", target=query.describe(), mode=mode)
    return task


def count_of(task: Task) -> int | None:
    """The count a finished count task found, else None."""
    result = task.result
    return int(result["count"]) if task.state == "done" and result is not None else None


def start_pull(store: Store, mode: str, audience: Audience, list_name: str, *, user: User,
               expected_rows: int | None = None, replacing: int | None = None) -> ListRecord:
    """Create the list ('pulling'): the worker process pulls the saved audience into it. Its name is made
    unique among the lists of the mode (by the store, as it inserts; `replacing` is a list about to go).

    Raises:
        NotAllowed: `user` is not an operator.
        PullError: the audience's connection was removed.
        ListError: the name is not usable.
    """
    require(user, OPERATOR, "Pulling an audience into a list")
    connection = store.get_connection(audience.connection_id)
    if connection is None:
        raise PullError("That CleverTap connection was removed: connect it again first.")
    query = AudienceQuery.from_audience(audience)
    record = store.create_list(name=clean_name(list_name), mode=mode, source_kind="audience", unique=True,
                               replacing=replacing,
                               source=f"{connection.name} · {query.describe()}", audience_id=audience.id,
                               connection_id=connection.id, expected_rows=expected_rows)
    actions.record(store, user, "pull_started", target=f"list {record.id}: {record.name}",
                   detail=record.source, mode=mode)
    return record


def pull_again(store: Store, mode: str, failed: ListRecord, *, user: User) -> ListRecord:
    """Re-pull a failed list's saved audience into a new list, which replaces the failed one."""
    require(user, OPERATOR, "Pulling an audience again")
    audience = store.get_audience(failed.audience_id) if failed.audience_id else None
    if audience is None:
        raise PullError("This list's saved audience is gone (its connection was removed): connect the "
                        "project again and define the audience anew.")
    record = start_pull(store, mode, audience, failed.name, user=user, replacing=failed.id)
    store.delete_list(failed.id)
    return record
