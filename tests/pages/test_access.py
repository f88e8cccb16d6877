"""The door and the roles as the pages show them (AppTest seeds st.user as a sign-in would): visitors
see the sign-in screen only, a person without a role is told whom to ask, a viewer is offered no
control that spends credits or writes to CleverTap; without sign-in, one local user on loopback, and
a refusal (or the opt-out's banner) beyond it."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from tests.pages.support import PAGES, app_test, isolate_app, page_errors, plain, release_app, rendered_text

ROLES = {"AUTH_ADMINS": "ada@example.com", "AUTH_OPERATORS": "@example.com", "AUTH_VIEWERS": "vic@example.com"}


@pytest.fixture(autouse=True)
def _release() -> Iterator[None]:
    yield
    release_app()


def signed_in(email: str | None, name: str = "Someone") -> dict[str, Any]:
    if email is None:
        return {"is_logged_in": False}
    return {"is_logged_in": True, "email": email, "name": name}


def run_as(monkeypatch, tmp_path, user: dict[str, Any], page: str = "pages/home.py", **environ: str) -> AppTest:
    isolate_app(monkeypatch, tmp_path, **{**ROLES, **environ})
    at = app_test()
    at.user = user
    at.run()
    if page != "pages/home.py":
        at.switch_page(page).run()
    assert not at.exception, page_errors(at)
    return at


@pytest.mark.parametrize("page", PAGES)
def test_a_visitor_sees_only_the_sign_in_screen(page: str, monkeypatch, tmp_path) -> None:
    at = run_as(monkeypatch, tmp_path, signed_in(None), page)
    if page == "pages/home.py":
        assert [b.key for b in at.button] == ["auth_sign_in"]
        assert [t.value for t in at.title] == ["List hygiene · Clearout × CleverTap"]
    else:
        # AppTest shows a switched page's own elements only (not app.py's, where the sign-in screen is):
        # the page itself must not have run. The browser test sees the sign-in screen on a deep link.
        assert not [b for b in at.button] and not [t for t in at.title]
    text = rendered_text(at)
    assert "Sandbox mode" not in text and "My lists" not in text and "Verification jobs" not in text


def test_a_person_on_no_list_is_told_whom_to_ask(monkeypatch, tmp_path) -> None:
    at = run_as(monkeypatch, tmp_path, signed_in("eve@elsewhere.org", "Eve"))
    assert "No access yet" in [s.value for s in at.subheader]
    assert "Ask an admin of this app to add you" in plain(at.warning[0].value)
    assert [b.key for b in at.button] == ["auth_sign_out_no_role"]
    at = run_as(monkeypatch, tmp_path / "default", signed_in("eve@elsewhere.org"), AUTH_DEFAULT_ROLE="viewer")
    assert "Viewer" in rendered_text(at) and "No access yet" not in rendered_text(at)


def test_the_sidebar_names_the_user_and_role_as_typed(monkeypatch, tmp_path) -> None:
    at = run_as(monkeypatch, tmp_path, signed_in("olga@example.com", "![o](http://127.0.0.1:9/o.png) *Olga*"))
    who = at.sidebar.markdown[0].value
    assert plain(who).startswith(":material/person: **![o](http://127.0.0.1:9/o.png) *Olga*** · Operator")
    assert "\\!\\[o\\]\\(http\\:" in who and "\\*Olga\\*" in who  # escaped: shown, never fetched or styled
    assert at.sidebar.button(key="auth_sign_out") is not None


def test_a_viewer_gets_no_control_that_spends_or_writes(monkeypatch, tmp_path) -> None:
    viewer = signed_in("vic@example.com", "Vic")
    at = run_as(monkeypatch, tmp_path, viewer, "pages/lists.py")
    assert "Adding a list needs the operator role" in plain(rendered_text(at))
    assert not [w for w in at.get("file_uploader")]
    at.switch_page("pages/connect.py").run()
    assert "needs the admin role" in plain(rendered_text(at)) and not [t for t in at.text_input]
    at.switch_page("pages/verify.py").run()
    assert not [b for b in at.button if b.key == "verify_start"]  # no list yet; the lock shows once one exists
    at.switch_page("pages/export.py").run()
    assert not [b for b in at.button if b.key == "export_dry_run"]


def test_an_admin_and_an_operator_see_their_controls(monkeypatch, tmp_path) -> None:
    at = run_as(monkeypatch, tmp_path, signed_in("ada@example.com", "Ada"), "pages/connect.py")
    assert at.button(key="connect_save") is not None and at.button(key="connect_token_save") is not None
    release_app()
    at = run_as(monkeypatch, tmp_path / "op", signed_in("olga@example.com", "Olga"), "pages/connect.py")
    assert not [b for b in at.button if b.key == "connect_save"]
    at.switch_page("pages/lists.py").run()
    assert [w for w in at.get("file_uploader")] and "needs the operator role" not in plain(rendered_text(at))


def test_without_sign_in_one_local_user_on_loopback(monkeypatch, tmp_path) -> None:
    isolate_app(monkeypatch, tmp_path)
    at = app_test().run()
    assert "Local user — no sign-in" in plain(at.sidebar.markdown[0].value)
    assert not [b for b in at.sidebar.button]  # nothing to sign out of
    [uploader] = at.switch_page("pages/lists.py").run().get("file_uploader")
    assert uploader.proto.max_upload_size_mb == 200  # the browser refuses a bigger file before sending it


def test_a_network_address_without_sign_in_is_refused_or_loudly_open(monkeypatch, tmp_path) -> None:
    previous = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        isolate_app(monkeypatch, tmp_path)
        at = app_test().run()
        assert not at.exception, page_errors(at)
        assert "Refusing to serve on 0.0.0.0 without sign-in" in plain(at.error[0].value)
        assert "Sandbox mode" not in rendered_text(at) and not [b for b in at.button]
        release_app()
        isolate_app(monkeypatch, tmp_path / "open", ALLOW_UNAUTHENTICATED_NETWORK="1")
        at = app_test().run()
        for page in PAGES[1:3]:
            at.switch_page(page).run()
            assert any(plain(w.value).startswith("**Open to the network, no sign-in.** No sign-in, and this app "
                                                 "listens on 0.0.0.0: anyone who can reach it") for w in at.warning)
    finally:
        config.set_option("server.address", previous)
