"""AppTest of the Connect page: prefill, test-and-save, each error message, secrets, removal, Clearout."""
from __future__ import annotations

import stat
from pathlib import Path
from collections.abc import Iterator

import pytest

from lib import ui
from tests.pages.support import balance_read, open_page, page_errors, release_app, rendered_text, wait_for
from tests.runtime_support import closed_port_url


@pytest.fixture(autouse=True)
def _release(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("lib.http.sleep", lambda seconds: None)
    yield
    release_app()


def open_connect(monkeypatch, tmp_path, **environ):
    return open_page(monkeypatch, tmp_path, "pages/connect.py", **environ)


def live_env(sandbox, **extra) -> dict[str, str]:
    return {"APP_MODE": "live", "CLEVERTAP_API_BASE": sandbox.clevertap_base_template,
            "CLEAROUT_API_BASE": sandbox.clearout_base, **extra}


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def fill(at, account_id: str, passcode: str, name: str = "Shop app"):
    at.text_input(key="connect_account_id").input(account_id)
    at.text_input(key="connect_passcode").input(passcode)
    at.text_input(key="connect_name").input(name)
    return at


def test_sandbox_form_is_prefilled_and_connects(monkeypatch, tmp_path) -> None:
    at = open_connect(monkeypatch, tmp_path)
    sandbox = ui.runtime().sandbox
    assert at.text_input(key="connect_account_id").value == sandbox.account_id
    assert at.text_input(key="connect_name").value == "Sandbox demo"
    assert at.selectbox(key="connect_region").value == "IN1"
    assert at.checkbox(key="connect_remember").disabled
    assert "simulated CleverTap" in rendered_text(at)
    assert "No CleverTap project connected yet" in rendered_text(at)
    at.button(key="connect_save").click().run()
    assert not at.exception, page_errors(at)
    assert [s.value for s in at.success] == ["Connected Sandbox demo: CleverTap accepted the credentials."]
    text = rendered_text(at)
    # The demo passcode is not lost at a restart: the app sets it at every start.
    assert "Sandbox demo" in text and "the sandbox demo passcode, set by the app at every start" in text
    assert "kept in memory" not in text
    assert "Last successful check: 20" in text
    assert not Path(tmp_path / ".env").exists()
    wait_for(balance_read)  # the page asked; the worker read it
    at.run()
    assert at.metric[0].value == f"{ui.runtime().sandbox.stats()['credits_left']:,}"
    assert "sandbox token, active automatically" in text


def test_wrong_passcode_is_explained_and_nothing_saved(monkeypatch, tmp_path) -> None:
    at = open_connect(monkeypatch, tmp_path)
    at.text_input(key="connect_passcode").input("SBX-WRONG-0000")
    at.button(key="connect_save").click().run()
    [message] = errors(at)
    assert "rejected project id" in message and "SBX-WRONG-0000" not in message
    assert ui.runtime().store.list_connections("sandbox") == []


def test_wrong_region_names_the_right_one_and_preselects_it(monkeypatch, tmp_path) -> None:
    at = open_connect(monkeypatch, tmp_path)
    at.selectbox(key="connect_region").set_value("US1")
    at.button(key="connect_save").click().run()
    [message] = errors(at)
    assert "belongs to region IN1" in message
    assert at.selectbox(key="connect_region").value == "IN1"
    at.button(key="connect_save").click().run()
    assert not errors(at) and at.success


def test_dashboard_url_picks_the_region(monkeypatch, tmp_path) -> None:
    at = open_connect(monkeypatch, tmp_path)
    at.selectbox(key="connect_region").set_value("US1")
    at.text_input(key="connect_dashboard_url").input("https://in1.dashboard.clevertap.com/W9R/overview")
    at.button(key="connect_save").click().run()
    assert not errors(at) and ui.runtime().store.list_connections("sandbox")[0].region == "IN1"


def test_bad_dashboard_url_is_explained(monkeypatch, tmp_path) -> None:
    at = open_connect(monkeypatch, tmp_path)
    at.text_input(key="connect_dashboard_url").input("https://example.com/dashboard")
    at.button(key="connect_save").click().run()
    [message] = errors(at)
    assert "not a CleverTap dashboard URL" in message


def test_missing_fields_are_named(monkeypatch, tmp_path) -> None:
    at = open_connect(monkeypatch, tmp_path)
    at.text_input(key="connect_account_id").input("")
    at.button(key="connect_save").click().run()
    assert "Enter the Project ID" in errors(at)[0]


def test_no_network_is_explained(monkeypatch, tmp_path) -> None:
    at = open_connect(monkeypatch, tmp_path, APP_MODE="live", CLEVERTAP_API_BASE=closed_port_url() + "/{region}",
                      CLEAROUT_API_BASE=closed_port_url() + "/v2", CLEAROUT_API_TOKEN="tok-unreachable")
    wait_for(balance_read)
    at.run()
    assert "Could not reach Clearout" in rendered_text(at) and "tok-unreachable" not in rendered_text(at)
    fill(at, "W9R-ANY-0001", "secret-passcode-1").button(key="connect_save").click().run()
    assert any("Could not reach CleverTap" in message for message in errors(at))


def test_live_remember_writes_env_0600_and_never_renders_the_passcode(monkeypatch, tmp_path, sandbox) -> None:
    at = open_connect(monkeypatch, tmp_path, **live_env(sandbox))
    assert not at.checkbox(key="connect_remember").disabled
    fill(at, sandbox.account_id, sandbox.passcode)
    at.checkbox(key="connect_remember").check()
    at.button(key="connect_save").click().run()
    assert at.success and not errors(at)
    env = tmp_path / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600 and sandbox.passcode in env.read_text()
    text = rendered_text(at)
    assert "passcode remembered in .env" in text and sandbox.passcode not in text
    [passcode] = [w for w in at.text_input if w.label == "Passcode"]  # the form starts again, empty
    assert passcode.value == "" and passcode.key != "connect_passcode"


def test_passcode_needed_after_restart_can_be_entered_again(monkeypatch, tmp_path, sandbox) -> None:
    at = open_connect(monkeypatch, tmp_path, **live_env(sandbox))
    fill(at, sandbox.account_id, sandbox.passcode).button(key="connect_save").click().run()
    connection = ui.runtime().store.list_connections("live")[0]
    release_app()  # the app restarts: the passcode was kept in memory only
    at = open_connect(monkeypatch, tmp_path, **live_env(sandbox))
    assert "passcode needed" in rendered_text(at)
    at.text_input(key=f"connect_repass_{connection.id}").input("WRONG")
    at.button(key=f"connect_resave_{connection.id}").click().run()
    assert "rejected" in errors(at)[0]
    at.text_input(key=f"connect_repass_{connection.id}").input(sandbox.passcode)
    at.button(key=f"connect_resave_{connection.id}").click().run()
    assert not errors(at) and "passcode entered here, kept in memory until the app restarts" in rendered_text(at)


def test_remove_asks_for_confirmation(monkeypatch, tmp_path) -> None:
    at = open_connect(monkeypatch, tmp_path)
    at.button(key="connect_save").click().run()
    connection = ui.runtime().store.list_connections("sandbox")[0]
    at.button(key=f"connect_remove_{connection.id}").click().run()
    assert "Remove **Sandbox demo**?" in at.warning[0].value
    at.button(key=f"connect_remove_no_{connection.id}").click().run()
    assert ui.runtime().store.list_connections("sandbox") and not at.warning
    at.button(key=f"connect_remove_{connection.id}").click().run()
    at.button(key=f"connect_remove_yes_{connection.id}").click().run()
    assert not at.exception, page_errors(at)
    assert ui.runtime().store.list_connections("sandbox") == []
    assert "No CleverTap project connected yet" in rendered_text(at)


def test_live_settings_are_offered_prefilled_without_the_passcode(monkeypatch, tmp_path, sandbox) -> None:
    at = open_connect(monkeypatch, tmp_path, **live_env(
        sandbox, CLEVERTAP_ACCOUNT_ID=sandbox.account_id, CLEVERTAP_PASSCODE=sandbox.passcode,
        CLEVERTAP_REGION="in1", CLEVERTAP_ACCOUNT_NAME="Main app"))
    assert at.text_input(key="connect_account_id").value == sandbox.account_id
    assert at.text_input(key="connect_name").value == "Main app"
    assert at.text_input(key="connect_passcode").value == ""
    assert sandbox.passcode not in rendered_text(at)
    at.button(key="connect_save").click().run()
    assert not errors(at)
    assert "passcode from the environment (CLEVERTAP_PASSCODE)" in rendered_text(at)


def test_clearout_token_bad_then_good(monkeypatch, tmp_path, sandbox) -> None:
    at = open_connect(monkeypatch, tmp_path, **live_env(sandbox))
    assert "No Clearout API token yet" in rendered_text(at)
    at.text_input(key="connect_token").input("bad-token")
    at.button(key="connect_token_save").click().run()
    [message] = errors(at)
    assert "Clearout rejected the API token" in message
    at.text_input(key="connect_token").input(sandbox.clearout_token)
    at.button(key="connect_token_save").click().run()
    assert not errors(at) and "credits available" in at.success[0].value
    assert at.metric[0].value.replace(",", "").isdigit()
    assert "token entered here, kept in memory until the app restarts" in rendered_text(at)
    assert sandbox.clearout_token not in rendered_text(at)
