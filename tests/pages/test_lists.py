"""AppTest of the Lists page: empty states, audience count and pull, errors, My lists actions.

The upload widget is not supported by AppTest: CSV lists are added through lib.lists here (the
page calls exactly that), and the import itself is tested in tests/test_lists.py.
"""
from __future__ import annotations

import io
from datetime import timedelta
from collections.abc import Iterator

import pytest

from lib import audiences, lists, ui
from lib import connections as conn
from tests.pages.support import (app_test, isolate_app, page_errors, plain, release_app, rendered_text, start_worker,
                                 wait_for)
from tests.access_support import ADMIN, OPERATOR


@pytest.fixture(autouse=True)
def _release(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("lib.http.sleep", lambda seconds: None)
    yield
    release_app()


def open_lists(monkeypatch, tmp_path, *, connect: bool = True, **environ):
    isolate_app(monkeypatch, tmp_path, **environ)
    at = app_test().run()
    start_worker()
    rt = ui.runtime()
    if connect and rt.sandbox is not None:
        sb = rt.sandbox
        conn.check_and_save(rt, name="Sandbox demo", account_id=sb.account_id, passcode=sb.passcode, region="IN1",
                            user=ADMIN)
    at.switch_page("pages/lists.py").run()
    assert not at.exception, page_errors(at)
    return at


def press_count(at) -> None:
    """Press Count and wait for the worker's answer."""
    at.button(key="lists_count").click().run()
    task_id = at.session_state["lists_count_task"]
    wait_for(lambda: not ui.runtime().store.task(task_id).is_open)
    at.run()


def pulled(list_id: int) -> bool:
    return ui.runtime().store.list_record(list_id).state != "pulling"


def add_csv(rows: int = 150, name: str = "Newsletter"):
    data = ("Identity,Email\n" + "".join(f"{i},user{i}@example.com\n" for i in range(rows))).encode()
    record, _ = lists.add_csv_list(ui.runtime().store, ui.runtime().mode, io.BytesIO(data),
                                   file_name="newsletter.csv", max_bytes=10**6, name=name, user=OPERATOR)
    return record


def test_without_connection_it_links_to_connect(monkeypatch, tmp_path) -> None:
    at = open_lists(monkeypatch, tmp_path, connect=False)
    text = rendered_text(at)
    assert "No CleverTap project connected yet" in text and "No lists yet" in text
    [link] = at.get("page_link")
    assert (link.proto.page, link.proto.label) == ("connect", "Connect a CleverTap project")


def test_the_uploader_and_the_help_say_one_limit(monkeypatch, tmp_path) -> None:
    at = open_lists(monkeypatch, tmp_path, UPLOAD_MAX_MB="50")
    [uploader] = at.get("file_uploader")
    assert uploader.proto.max_upload_size_mb == 50  # the uploader shows "50MB per file", not the server's cap
    assert "Up to 50 MB (UPLOAD_MAX_MB)" in rendered_text(at)
    assert ui.runtime().settings.upload_max_bytes == 50 * 2**20  # what the import refuses above


def test_adding_without_a_file_says_what_to_do(monkeypatch, tmp_path) -> None:
    at = open_lists(monkeypatch, tmp_path)
    at.text_input(key="lists_csv_name").input("spring")
    at.button(key="lists_add_csv").click().run()  # the form's submit: the name and the click together
    assert [e.value for e in at.error] == ["Choose a CSV file first (drag it onto the box above, or browse)."]
    assert ui.runtime().store.list_lists("sandbox") == []


def test_count_then_pull_an_audience_into_my_lists(monkeypatch, tmp_path) -> None:
    at = open_lists(monkeypatch, tmp_path)
    assert at.date_input(key="lists_dates").value == audiences.default_range()
    press_count(at)
    [message] = [s.value for s in at.success]
    count = int(message.split("**")[1].replace(",", ""))
    assert count > 0 and "App Launched" in message
    assert at.button(key="lists_pull").label == f"Pull {count:,} profiles into My lists"
    at.text_input(key="lists_audience_name").input("Launched recently")
    at.button(key="lists_pull").click().run()
    assert not at.exception, page_errors(at)
    rt = ui.runtime()
    record = rt.store.list_lists("sandbox")[0]
    assert record.name == "Launched recently" and record.expected_rows == count
    wait_for(lambda: pulled(record.id), timeout=60)
    at.run()
    table = at.dataframe[0].value
    assert table["Name"].tolist() == ["Launched recently"] and table["Rows"].tolist() == [count]
    assert "Saved audiences (1)" in rendered_text(at)


def test_filters_and_a_clevertap_refusal_show_its_message(monkeypatch, tmp_path) -> None:
    # (An invalid event name is refused the same way: tests/test_pulls.py; AppTest cannot type a new option.)
    at = open_lists(monkeypatch, tmp_path)
    start, end = audiences.default_range()
    at.date_input(key="lists_dates").set_value((start, end + timedelta(days=3))).run()
    at.button(key="lists_add_filter").click().run()
    at.text_input(key="lists_filter_name_0").input("Customer Type")
    at.text_input(key="lists_filter_value_0").input("Gold")
    press_count(at)
    [message] = [e.value for e in at.error]
    assert "future" in message and "CleverTap" in message
    at.date_input(key="lists_dates").set_value((start, end)).run()
    press_count(at)
    assert not at.error and "Customer Type equals Gold" in at.success[0].value


def test_reversed_dates_are_explained(monkeypatch, tmp_path) -> None:
    at = open_lists(monkeypatch, tmp_path)
    start, end = audiences.default_range()
    at.date_input(key="lists_dates").set_value((end, start - timedelta(days=1))).run()
    assert any("after the end date" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "lists_count"]


def test_failed_pull_shows_its_error_and_pulls_again(monkeypatch, tmp_path) -> None:
    at = open_lists(monkeypatch, tmp_path)
    rt = ui.runtime()
    connection = rt.store.list_connections("sandbox")[0]
    audience = audiences.save_audience(rt.store, audiences.build_query(connection.id, "Charged",
                                                                       *audiences.default_range()), "Buyers",
                                                                       user=OPERATOR)
    rt.store.create_list(name="Buyers", mode="sandbox", source_kind="audience", source="q", audience_id=audience.id,
                         connection_id=connection.id, state="failed")
    failed = rt.store.update_list(rt.store.list_lists("sandbox")[0].id, error="CleverTap refused the query")
    at.run()
    assert "CleverTap refused the query" in [e.value for e in at.error]
    at.button(key="lists_retry").click().run()
    assert not at.exception, page_errors(at)
    [again] = rt.store.list_lists("sandbox")
    assert again.id != failed.id and again.name == "Buyers"
    wait_for(lambda: pulled(again.id), timeout=60)
    assert rt.store.get_list(again.id).state == "ready"


def test_preview_rename_and_delete(monkeypatch, tmp_path) -> None:
    at = open_lists(monkeypatch, tmp_path)
    record = add_csv()
    at.run()
    assert at.dataframe[0].value["Distinct addresses"].tolist() == [150]
    preview = at.dataframe[1].value
    assert len(preview) == 100 and preview["Email"].iloc[0] == "user0@example.com"
    at.text_input(key=f"lists_rename_{record.id}").input("  ")
    at.button(key="lists_rename").click().run()
    assert "Give the list a name." in [plain(e.value) for e in at.error]
    at.text_input(key=f"lists_rename_{record.id}").input("Monthly newsletter")
    at.button(key="lists_rename").click().run()
    assert ui.runtime().store.get_list(record.id).name == "Monthly newsletter"
    at.button(key="lists_delete").click().run()
    assert "Delete **Monthly newsletter**" in at.warning[0].value
    at.button(key="lists_delete_no").click().run()
    assert ui.runtime().store.get_list(record.id) is not None
    at.button(key="lists_delete").click().run()
    at.button(key="lists_delete_yes").click().run()
    assert not at.exception, page_errors(at)
    assert ui.runtime().store.get_list(record.id) is None
    assert not ui.runtime().store.list_path(record.id).exists()
    assert "No lists yet" in rendered_text(at)


def test_lists_of_the_other_mode_are_not_shown(monkeypatch, tmp_path) -> None:
    at = open_lists(monkeypatch, tmp_path)
    add_csv(name="Sandbox list")
    ui.runtime().store.create_list(name="Live list", mode="live", source_kind="csv", source="x.csv", state="ready")
    at.run()
    assert at.dataframe[0].value["Name"].tolist() == ["Sandbox list"]
