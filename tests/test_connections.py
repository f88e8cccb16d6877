"""Connect logic against the sandbox over HTTP: test-and-save, errors, where secrets go, removal."""
from __future__ import annotations

import stat

import pytest

from lib import connections as conn
from lib.verification.balance import refresh_balance
from lib.vault import passcode_env_key
from tests.runtime_support import closed_port_url, make_runtime
from tests.access_support import ADMIN


@pytest.fixture
def runtime(tmp_path, sandbox):
    rt = make_runtime(tmp_path, sandbox)
    yield rt
    rt.close()


def db_bytes(rt) -> bytes:
    return b"".join(p.read_bytes() for p in rt.store.data_dir.glob("app.sqlite3*"))


def test_check_and_save_keeps_passcode_in_memory_only(runtime, sandbox) -> None:
    saved = conn.check_and_save(runtime, name=" Shop  app ", account_id=sandbox.account_id,
                                passcode=sandbox.passcode, region="IN1", user=ADMIN)
    assert saved.name == "Shop app" and saved.region == "IN1" and saved.last_checked_at
    assert runtime.vault.passcode(sandbox.account_id) == sandbox.passcode
    [view] = conn.connection_views(runtime)
    assert view.secret == "memory" and "memory until the app restarts" in view.secret_label
    assert not runtime.settings.env_file.exists()
    assert sandbox.passcode.encode() not in db_bytes(runtime)


def test_wrong_passcode_saves_nothing(runtime, sandbox) -> None:
    with pytest.raises(conn.ConnectError) as err:
        conn.check_and_save(runtime, name="Shop", account_id=sandbox.account_id, passcode="WRONG-1",
                            region="IN1", user=ADMIN)
    assert "rejected" in err.value.message and err.value.region is None
    assert "WRONG-1" not in err.value.message
    assert runtime.store.list_connections("live") == [] and runtime.vault.passcode(sandbox.account_id) is None


def test_wrong_region_names_the_right_one(runtime, sandbox) -> None:
    with pytest.raises(conn.ConnectError) as err:
        conn.check_and_save(runtime, name="Shop", account_id=sandbox.account_id, passcode=sandbox.passcode,
                            region="US1", user=ADMIN)
    assert err.value.region == "IN1" and "IN1" in err.value.message
    assert runtime.store.list_connections("live") == []


def test_no_network_says_so(tmp_path, sandbox, no_sleep) -> None:
    rt = make_runtime(tmp_path, sandbox, CLEVERTAP_API_BASE=closed_port_url() + "/{region}")
    try:
        with pytest.raises(conn.ConnectError) as err:
            conn.check_and_save(rt, name="Shop", account_id=sandbox.account_id, passcode=sandbox.passcode,
                                region="IN1", user=ADMIN)
        assert "Could not reach CleverTap" in err.value.message
    finally:
        rt.close()


def test_remember_writes_private_env_not_the_store(runtime, sandbox, tmp_path) -> None:
    conn.check_and_save(runtime, name="Shop", account_id=sandbox.account_id, passcode=sandbox.passcode,
                        region="IN1", remember=True, user=ADMIN)
    env = runtime.settings.env_file
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert passcode_env_key(sandbox.account_id) in env.read_text() and sandbox.passcode in env.read_text()
    assert sandbox.passcode.encode() not in db_bytes(runtime)
    assert conn.connection_views(runtime)[0].secret == "env"


def test_after_restart_passcode_is_needed_until_entered_again(tmp_path, sandbox) -> None:
    first = make_runtime(tmp_path, sandbox)
    conn.check_and_save(first, name="Shop", account_id=sandbox.account_id, passcode=sandbox.passcode, region="IN1",
                        user=ADMIN)
    first.close()
    again = make_runtime(tmp_path, sandbox)
    try:
        [view] = conn.connection_views(again)
        assert view.secret == "needed"
        with pytest.raises(conn.ConnectError, match="Enter the passcode"):
            conn.check_and_save(again, name="Shop", account_id=sandbox.account_id, passcode="", region="IN1",
                                user=ADMIN)
        conn.check_and_save(again, name="Shop", account_id=sandbox.account_id, passcode=sandbox.passcode,
                            region="IN1", user=ADMIN)
        assert [v.secret for v in conn.connection_views(again)] == ["memory"]
        assert len(again.store.list_connections("live")) == 1
    finally:
        again.close()


def test_remembered_passcode_survives_restart_and_remove_forgets_it(tmp_path, sandbox) -> None:
    first = make_runtime(tmp_path, sandbox)
    conn.check_and_save(first, name="Shop", account_id=sandbox.account_id, passcode=sandbox.passcode,
                        region="IN1", remember=True, user=ADMIN)
    first.close()
    again = make_runtime(tmp_path, sandbox)
    try:
        [view] = conn.connection_views(again)
        assert view.secret == "env"
        conn.remove_connection(again, view.connection.id, user=ADMIN)
        assert again.store.list_connections("live") == []
        assert sandbox.passcode not in again.settings.env_file.read_text()
        assert again.vault.passcode(sandbox.account_id) is None
    finally:
        again.close()


def test_names_are_unique_per_mode(runtime, sandbox) -> None:
    conn.check_and_save(runtime, name="Shop", account_id=sandbox.account_id, passcode=sandbox.passcode, region="IN1",
                        user=ADMIN)
    with pytest.raises(conn.ConnectError, match="already exists"):
        conn.check_and_save(runtime, name="Shop", account_id="W9R-OTHER", passcode="x", region="IN1", user=ADMIN)


@pytest.mark.parametrize(("selected", "url", "expected"), [
    ("US1", "", "US1"),
    ("US1", "https://in1.dashboard.clevertap.com/W9R/overview", "IN1"),
    ("IN1", "eu1.dashboard.clevertap.com", "EU1"),
    ("in1", None, "IN1"),
])
def test_region_from_selection_or_dashboard_url(selected, url, expected) -> None:
    assert conn.resolve_region(selected, url) == expected


@pytest.mark.parametrize(("selected", "url"), [("US1", "https://example.com/x"), ("XX9", "")])
def test_bad_region_input_is_explained(selected, url) -> None:
    with pytest.raises(conn.ConnectError, match="dashboard"):
        conn.resolve_region(selected, url)


def test_sandbox_mode_prefills_demo_project_and_never_writes_env(tmp_path) -> None:
    rt = make_runtime(tmp_path)
    try:
        defaults = conn.form_defaults(rt)
        assert (defaults.account_id, defaults.region, defaults.name) == (
            rt.sandbox.account_id, "IN1", "Sandbox demo")
        assert defaults.passcode == rt.sandbox.passcode and not defaults.can_remember
        conn.check_and_save(rt, name=defaults.name, account_id=defaults.account_id,
                            passcode=defaults.passcode, region=defaults.region, remember=True, user=ADMIN)
        assert not rt.settings.env_file.exists()
        assert conn.form_defaults(rt).account_id == ""  # connected: the form is for another project
        view = conn.clearout_view(rt)
        assert view.storage == "sandbox" and view.credits is None and "Reading" in (view.message or "")
        refresh_balance(rt.store, rt.mode, rt.clients.clearout())  # what the worker does when a page asks
        view = conn.clearout_view(rt)
        assert view.credits is not None and view.credits > 0
    finally:
        rt.close()


def test_live_settings_prefill_and_configured_passcode(tmp_path, sandbox) -> None:
    rt = make_runtime(tmp_path, sandbox, CLEVERTAP_ACCOUNT_ID=sandbox.account_id,
                      CLEVERTAP_PASSCODE=sandbox.passcode, CLEVERTAP_REGION="in1",
                      CLEVERTAP_ACCOUNT_NAME="Main app")
    try:
        defaults = conn.form_defaults(rt)
        assert (defaults.account_id, defaults.region, defaults.name) == (sandbox.account_id, "IN1", "Main app")
        assert defaults.passcode == "" and "CLEVERTAP_PASSCODE" in defaults.passcode_hint
        conn.check_and_save(rt, name=defaults.name, account_id=defaults.account_id, passcode="",
                            region=defaults.region, user=ADMIN)
        assert conn.connection_views(rt)[0].secret == "settings"
    finally:
        rt.close()


def test_clearout_token_checked_before_it_is_kept(runtime, sandbox) -> None:
    assert conn.clearout_view(runtime).storage == "none"
    with pytest.raises(conn.ConnectError) as err:
        conn.save_clearout_token(runtime, "0" * 32 + ":" + "1" * 64, user=ADMIN)
    assert "Clearout" in err.value.message and "0" * 32 not in err.value.message
    assert runtime.vault.clearout_token() is None
    credits = conn.save_clearout_token(runtime, sandbox.clearout_token, remember=True, user=ADMIN)
    assert credits.available > 0
    view = conn.clearout_view(runtime)
    assert view.storage == "env" and view.credits == credits.available  # the check's own reading, kept
    assert sandbox.clearout_token in runtime.settings.env_file.read_text()
    conn.save_clearout_token(runtime, sandbox.clearout_token, remember=False, user=ADMIN)
    assert sandbox.clearout_token not in runtime.settings.env_file.read_text()
    assert conn.clearout_view(runtime).storage == "memory"


def test_labels_say_where_each_secret_comes_from(tmp_path, sandbox) -> None:
    """The environment, the .env file, typed on Connect: each said as it is (a token from the
    environment is not "kept in memory until the app restarts")."""
    key = passcode_env_key(sandbox.account_id)
    rt = make_runtime(tmp_path / "env", sandbox, CLEAROUT_API_TOKEN=sandbox.clearout_token, **{key: sandbox.passcode})
    try:
        assert conn.clearout_view(rt).storage_label == "token from the environment (CLEAROUT_API_TOKEN)"
        conn.check_and_save(rt, name="Shop", account_id=sandbox.account_id, passcode="", region="IN1", user=ADMIN)
        assert conn.connection_views(rt)[0].secret_label == f"passcode from the environment ({key})"
    finally:
        rt.close()
    (tmp_path / "file").mkdir()
    (tmp_path / "file" / ".env").write_text(
        f'CLEAROUT_API_TOKEN="{sandbox.clearout_token}"\n{key}="{sandbox.passcode}"\n')
    rt = make_runtime(tmp_path / "file", sandbox)
    try:
        assert conn.clearout_view(rt).storage_label == "token from .env (CLEAROUT_API_TOKEN)"
        conn.check_and_save(rt, name="Shop", account_id=sandbox.account_id, passcode="", region="IN1", user=ADMIN)
        assert conn.connection_views(rt)[0].secret_label == f"passcode remembered in .env ({key})"
    finally:
        rt.close()


def test_the_sandbox_passcode_is_not_said_to_be_lost_at_a_restart(tmp_path) -> None:
    rt = make_runtime(tmp_path)
    try:
        conn.check_and_save(rt, name="Demo", account_id=rt.sandbox.account_id, passcode=rt.sandbox.passcode,
                            region="IN1", user=ADMIN)
        [view] = conn.connection_views(rt)
        assert view.secret == "sandbox" and "restarts" not in view.secret_label
    finally:
        rt.close()
