"""Roles from settings, the User a sign-in makes, and `require` in every guarded service: a viewer (or,
for admin work, an operator) is refused by lib itself, and nothing is changed or recorded."""
from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lib import actions, audiences, connections, lists, tasks
from lib.access import NotAllowed, User, local_user, require, role_for, signed_in
from lib.export import runs, undo
from lib.settings import SettingsError, load_settings
from lib.store import Store
from lib.verification import start, views
from tests.access_support import ADMIN, OPERATOR, VIEWER


def settings(**environ: str):
    return load_settings(Path("/nonexistent/.env"), environ=environ)


def test_roles_come_from_settings_exact_addresses_before_domains() -> None:
    s = settings(AUTH_ADMINS="Ada@Example.com", AUTH_OPERATORS="@example.com; olga@partner.io",
                 AUTH_VIEWERS="intern@example.com, @partner.io")
    assert s.auth_admins == ("ada@example.com",) and s.auth_operators == ("@example.com", "olga@partner.io")
    assert role_for(s, "ada@example.com") == "admin"
    assert role_for(s, "someone@example.com") == "operator"
    assert role_for(s, "intern@example.com") == "viewer"  # the exact address wins over the domain's role
    assert role_for(s, "olga@partner.io") == "operator" and role_for(s, "x@partner.io") == "viewer"
    assert role_for(s, "stranger@elsewhere.org") is None  # nobody's list: no access by default
    assert role_for(settings(AUTH_DEFAULT_ROLE="viewer"), "stranger@elsewhere.org") == "viewer"
    assert role_for(settings(AUTH_OPERATORS="@example.com", AUTH_ADMINS="@example.com"), "a@example.com") == "admin"


@pytest.mark.parametrize("name, value", [("AUTH_ADMINS", "ada"), ("AUTH_VIEWERS", "a@b@c.com"),
                                         ("AUTH_OPERATORS", "@localhost"), ("AUTH_DEFAULT_ROLE", "owner"),
                                         ("ALLOW_UNAUTHENTICATED_NETWORK", "maybe")])
def test_bad_auth_settings_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        settings(**{name: value})


def test_a_sign_in_makes_a_user_or_says_why_not() -> None:
    s = settings(AUTH_OPERATORS="olga@example.com", AUTH_VIEWERS="@example.com")
    made = signed_in(s, {"is_logged_in": True, "email": "Olga@Example.com", "name": "Olga  Ops"})
    assert made.user == User("olga@example.com", "Olga Ops", "operator")
    assert made.user.label == "Olga Ops <olga@example.com>"
    stranger = signed_in(s, {"is_logged_in": True, "email": "eve@evil.test", "name": "Eve"})
    assert stranger.user is None and "Ask an admin" in (stranger.refusal or "") and "eve@evil.test" in stranger.refusal
    assert signed_in(s, {"is_logged_in": True, "name": "No Mail"}).user is None
    unverified = signed_in(s, {"is_logged_in": True, "email": "vic@example.com", "email_verified": False})
    assert unverified.user is None and "not verified" in (unverified.refusal or "")


def test_require_ranks_roles_and_refuses_what_is_no_user() -> None:
    require(ADMIN, "operator", "x")
    require(OPERATOR, "viewer", "x")
    with pytest.raises(NotAllowed, match="needs the operator role; vic@example.com is a viewer"):
        require(VIEWER, "operator", "Starting a verification")
    with pytest.raises(NotAllowed, match="admin"):
        require(OPERATOR, "admin", "Deleting a list")
    with pytest.raises(NotAllowed):
        require("ana", "viewer", "Anything")  # type: ignore[arg-type]  # a free-text actor is no identity
    assert local_user().role == "admin" and local_user().local and local_user().email.endswith("@localhost")


DUMMY: Any = object()  # `require` comes first: nothing else of the call is looked at

# Every guarded service, called by someone one role too low.
GUARDED: list[tuple[str, User, Callable[[Store, Any, User], object]]] = [
    ("start_verification", VIEWER, lambda s, rt, u: start.start_verification(s, DUMMY, available_credits=10,
                                                                              mode="sandbox", user=u)),
    ("attach_list_id", VIEWER, lambda s, rt, u: start.attach_list_id(s, 1, "5f8a1c2b3d4e5f6a7b8c9d0e", user=u)),
    ("confirm_upload_again", VIEWER, lambda s, rt, u: start.confirm_upload_again(s, 1, credits_at_risk=1, user=u)),
    ("cancel", VIEWER, lambda s, rt, u: views.cancel(s, 1, user=u)),
    ("start_run", VIEWER, lambda s, rt, u: runs.start_run(s, DUMMY, DUMMY, user=u)),
    ("start_retry", VIEWER, lambda s, rt, u: runs.start_retry(s, 1, user=u)),
    ("stop_run", VIEWER, lambda s, rt, u: runs.stop_run(s, 1, user=u)),
    ("resume_run", VIEWER, lambda s, rt, u: runs.resume_run(s, 1, user=u)),
    ("start_undo", VIEWER, lambda s, rt, u: undo.start_undo(s, 1, user=u)),
    ("add_csv_list", VIEWER, lambda s, rt, u: lists.add_csv_list(s, "sandbox", io.BytesIO(b"Email\na@x.com\n"),
                                                                  file_name="a.csv", max_bytes=10**6, user=u)),
    ("rename_list", VIEWER, lambda s, rt, u: lists.rename_list(s, 1, "New", user=u)),
    ("delete_list", OPERATOR, lambda s, rt, u: lists.delete_list(s, 1, user=u)),
    ("save_audience", VIEWER, lambda s, rt, u: audiences.save_audience(s, DUMMY, "A", user=u)),
    ("start_pull", VIEWER, lambda s, rt, u: audiences.start_pull(s, "sandbox", DUMMY, "A", user=u)),
    ("pull_again", VIEWER, lambda s, rt, u: audiences.pull_again(s, "sandbox", DUMMY, user=u)),
    ("request_count", VIEWER, lambda s, rt, u: audiences.request_count(s, "sandbox", DUMMY, user=u)),
    ("request_undo_preview", VIEWER, lambda s, rt, u: tasks.request_undo_preview(s, "sandbox", 1, user=u)),
    ("request_read_back", VIEWER, lambda s, rt, u: tasks.request_read_back(s, "sandbox", 1, user=u)),
    ("check_and_save", OPERATOR, lambda s, rt, u: connections.check_and_save(
        rt, name="Shop", account_id="W8R-1", passcode="secret-passcode", region="IN1", user=u)),
    ("remove_connection", OPERATOR, lambda s, rt, u: connections.remove_connection(rt, 1, user=u)),
    ("save_clearout_token", OPERATOR, lambda s, rt, u: connections.save_clearout_token(rt, "t" * 40, user=u)),
]


class FakeRuntime:
    """What the connection services reach for; any use of it past `require` fails the test."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"runtime.{name} used before the role was checked")


@pytest.mark.parametrize("name, who, call", GUARDED, ids=[g[0] for g in GUARDED])
def test_every_guarded_service_refuses_a_role_too_low(name: str, who: User, call: Callable[..., object],
                                                      tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    try:
        with pytest.raises(NotAllowed) as refused:
            call(store, FakeRuntime(store), who)
        assert who.email in refused.value.message and "Ask an admin" in refused.value.message
        assert store.list_actions() == [] and store.list_lists("sandbox") == []
        assert store.list_jobs() == [] and store.list_export_runs() == []
    finally:
        store.close()


def test_actions_record_who_did_what(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    record, _ = lists.add_csv_list(store, "sandbox", io.BytesIO(b"Email\na@x.com\n"), file_name="spring.csv",
                                   max_bytes=10**6, user=OPERATOR)
    lists.rename_list(store, record.id, "Spring", user=User("eve@example.com", "=HYPERLINK(1)", "operator"))
    lists.delete_list(store, record.id, user=ADMIN)
    recorded = store.list_actions()
    assert [(a.action, a.actor_email, a.actor_role) for a in recorded] == [
        ("list_deleted", ADMIN.email, "admin"), ("list_renamed", "eve@example.com", "operator"),
        ("list_added", OPERATOR.email, "operator")]
    assert recorded[2].target == f"list {record.id}: spring" and "spring.csv" in recorded[2].detail
    table = actions.actions_table(recorded)
    assert table["Action"].tolist() == ["Deleted a list", "Renamed a list", "Added a list"]
    text = actions.actions_csv(recorded).decode("utf-8-sig")
    assert "ana@example.com" in text and "'=HYPERLINK(1)" in text  # a name a spreadsheet would run
    store.close()
