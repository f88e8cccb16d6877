"""Bulk verify: upload rules, progress, credits, result file and its one-time URL, cancel, remove."""
from __future__ import annotations

import io
import re
from collections import Counter

import pandas as pd
import pytest
import requests

from lib.columns import CLEAROUT_COLUMN_NAMES, STATUS, conform_clearout_columns
from lib.emails import normalise_email
from tests.sandbox.conftest import TIMEOUT, wait_for

EMAILS = ["Priya.Sharma@gmail.com", "priya.sharma@gmail.com ", "", "info@northwindtraders.com",
          "john@gmial.com", "not an email", "valid@example.com", "test.user@mailinator.com",
          "rahul.k@yahoo.com", "RAHUL.K@YAHOO.COM"]


def _csv(emails: list[str], header: str = "Email") -> bytes:
    lines = [f"Customer Id,{header},City"]
    lines += [f'C{i},"{e}",Pune' for i, e in enumerate(emails)]
    return ("\n".join(lines) + "\n").encode()


def _download(api, list_id: str) -> tuple[str, pd.DataFrame]:
    answer = api.co("POST", "/download/result", json={"list_id": list_id}).json()
    assert answer["status"] == "success", answer
    url = answer["data"]["url"]
    response = requests.get(url, timeout=TIMEOUT)
    assert response.status_code == 200
    return url, pd.read_csv(io.StringIO(response.text), dtype=str, keep_default_na=False)


def test_bulk_lifecycle_and_result_file(make_api):
    api = make_api(profiles=20, bulk_seconds=0.6)
    before = api.credits()
    upload = api.bulk("march leads.csv", _csv(EMAILS, header=" Email Address "))
    assert upload.status_code == 200
    list_id = upload.json()["data"]["list_id"]
    assert re.fullmatch(r"[0-9a-f]{24}", list_id)
    first = api.progress(list_id)["data"]
    assert first["progress_status"] == "running" and 0 <= first["percentile"] < 100
    assert api.co("POST", "/download/result", json={"list_id": list_id}).json()["error"]["code"] == 1029
    seen = [first["percentile"]]
    done = wait_for(lambda: (p := api.progress(list_id)["data"]) and seen.append(p["percentile"]) is None
                    and p["progress_status"] == "completed" and p, timeout=10)
    assert done == {"progress_status": "completed", "percentile": 100}
    assert seen == sorted(seen)

    url, frame = _download(api, list_id)
    assert re.match(r"http://127\.0\.0\.1:\d+/files/[0-9a-f]+/march%20leads_clearout_results\.csv\?", url)
    assert "X-Amz-Expires=300" in url
    assert list(frame.columns) == ["Customer Id", " Email Address ", "City", *CLEAROUT_COLUMN_NAMES]
    assert list(frame["Customer Id"]) == [f"C{i}" for i in range(len(EMAILS))]
    conformed = conform_clearout_columns(frame)  # display words and dtypes as declared
    statuses = dict(zip(frame[" Email Address "], conformed[STATUS].astype(str)))
    assert statuses["valid@example.com"] == "Valid"
    assert statuses["john@gmial.com"] == "Invalid"
    assert statuses["not an email"] == "Invalid"
    assert frame.loc[frame[" Email Address "] == "", "Clearout Verification Status"].eq("").all()
    assert frame.loc[frame[" Email Address "] == "john@gmial.com", "Clearout Suggested Email"].item() \
        == "john@gmail.com"
    # Case duplicates share one verdict and are charged once; test addresses and unknowns are free.
    pairs = frame.groupby(frame[" Email Address "].map(normalise_email))["Clearout Verification Status"]
    assert pairs.nunique().max() == 1
    unique = {normalise_email(e): s for e, s in statuses.items() if normalise_email(e)}
    billable = sum(1 for e, s in unique.items() if s != "Unknown" and e != "valid@example.com")
    assert api.credits() == before - billable
    assert api.sb.stats()["bulk_uploads_accepted"] == 1

    # One-time: a second GET of the same URL is refused; a fresh download/result works again.
    assert requests.get(url, timeout=TIMEOUT).status_code in (403, 404)
    assert _download(api, list_id)[1].equals(frame)


def test_result_url_expires_and_results_expire(make_api):
    api = make_api(profiles=20, bulk_seconds=0.1, result_url_ttl_s=300, result_retention_days=30)
    list_id = api.bulk("a.csv", _csv(EMAILS)).json()["data"]["list_id"]
    api.wait_completed(list_id)
    url = api.co("POST", "/download/result", json={"list_id": list_id}).json()["data"]["url"]
    api.sb.advance_clock(301)
    assert requests.get(url, timeout=TIMEOUT).status_code == 403
    api.sb.advance_clock(30 * 86400)
    expired = api.co("POST", "/download/result", json={"list_id": list_id})
    assert expired.status_code == 200
    assert expired.json() == {"status": "failed", "error": {
        "code": 1007, "message": "Result file got expired, contact us@clearout.io"}}


@pytest.mark.parametrize("name", ["list.txt", "list.csv.zip", "list", "list.xls"])
def test_other_formats_get_clearouts_400(make_api, name):
    api = make_api(profiles=20)
    response = api.bulk(name, _csv(EMAILS))
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Invalid file format, support file formats - ['csv', 'xlsx']"


@pytest.mark.parametrize("header", ["Email", "EMAILS", "email address", "E mail address ", "Emailaddress"])
def test_email_column_detection(make_api, header):
    api = make_api(profiles=20)
    assert api.bulk("h.csv", _csv(EMAILS, header=header)).json()["status"] == "success"


@pytest.mark.parametrize("header", ["Mail", "E-mail", "Contact"])
def test_no_email_column_is_1004(make_api, header):
    api = make_api(profiles=20)
    response = api.bulk("h.csv", _csv(EMAILS, header=header))
    assert response.status_code == 400 and response.json()["error"]["code"] == 1004
    assert api.sb.stats()["running_bulk_lists"] == 0


@pytest.mark.parametrize("name", ["book.xlsx", "BOOK.XLSX"])
def test_xlsx_is_refused_the_sandbox_reads_csv_only(make_api, name):
    """Clearout accepts .xlsx; the sandbox does not (the app uploads CSV only) and says so."""
    api = make_api(profiles=20)
    before = api.credits()
    response = api.bulk(name, b"PK\x03\x04 not read at all")
    assert response.status_code == 400
    assert response.json() == {"status": "failed", "error": {
        "message": "The sandbox reads CSV files only; convert the .xlsx file to CSV before uploading it"}}
    assert api.credits() == before  # the connection is still usable, and nothing was charged
    stats = api.sb.stats()
    assert stats["bulk_uploads_accepted"] == 0 and stats["running_bulk_lists"] == 0
    assert list((api.sb.bulk.directory / "_incoming").iterdir()) == []


def test_duplicate_file_needs_ignore_duplicate_file(make_api):
    api = make_api(profiles=20)
    content = _csv(EMAILS)
    assert api.bulk("same.csv", content, optimize="fastest_turnaround").json()["status"] == "success"
    duplicate = api.bulk("same.csv", content)
    assert duplicate.status_code == 200 and duplicate.json()["status"] == "failed"
    assert api.bulk("same.csv", content, ignore_duplicate_file="true").json()["status"] == "success"
    assert api.bulk("same.csv", content + b"C99,x@y.org,Goa\n").json()["status"] == "success"
    bad = api.bulk("other.csv", content, ignore_duplicate_file="yes")
    assert bad.status_code == 400
    assert api.bulk("other.csv", content, optimize="fastest").status_code == 400


def test_at_most_three_running_lists(make_api):
    api = make_api(profiles=20, bulk_seconds=60)
    for i in range(3):
        assert api.bulk(f"l{i}.csv", _csv(EMAILS)).json()["status"] == "success"
    fourth = api.bulk("l3.csv", _csv(EMAILS))
    assert fourth.status_code == 200
    assert fourth.json()["status"] == "failed" and fourth.json()["error"]["code"] == 1001
    stats = api.sb.stats()
    assert stats["running_bulk_lists"] == 3 and stats["max_running_bulk_lists"] == 3
    assert stats["bulk_uploads_accepted"] == 3


def test_credit_check_counts_unique_non_test_addresses(make_api):
    api = make_api(profiles=20, credits=5)
    needs_six = _csv([f"p{i}@gmail.com" for i in range(6)] + ["P0@GMAIL.COM", "valid@example.com"])
    refused = api.bulk("six.csv", needs_six)
    assert refused.status_code == 402
    assert refused.json()["error"] == {"code": 1028,
                                       "message": "Available credits are insufficient to verify 6 emails"}
    assert api.bulk("five.csv", _csv([f"p{i}@gmail.com" for i in range(5)] + ["valid@example.com"])) \
        .json()["status"] == "success"
    # The running list holds its 5 credits: nothing is left for another list.
    assert api.bulk("one.csv", _csv(["q@gmail.com"])).json()["error"]["code"] == 1028


def test_cancel_marks_unreached_rows_unknown_and_free(make_api):
    api = make_api(profiles=20, bulk_seconds=2.0)
    emails = [f"person{i}@yahoo.com" for i in range(400)]
    before = api.credits()
    list_id = api.bulk("big.csv", _csv(emails)).json()["data"]["list_id"]
    wait_for(lambda: api.progress(list_id)["data"]["percentile"] >= 25)
    cancelled = api.co("POST", "/email_verify/list/cancel", json={"list_id": list_id}).json()
    assert cancelled["status"] == "success"
    assert cancelled["data"]["list_id"] == list_id and cancelled["data"]["name"] == "big"
    assert cancelled["data"]["source"] == "upload"
    progress = api.progress(list_id)["data"]
    assert progress["progress_status"] == "cancelled" and 25 <= progress["percentile"] < 100
    again = api.co("POST", "/email_verify/list/cancel", json={"list_id": list_id}).json()
    assert again["error"] == {"code": 1116, "message": "List is not in the cancellable stage"}
    wait_for(lambda: api.co("POST", "/download/result", json={"list_id": list_id}).json()["status"] == "success")
    frame = _download(api, list_id)[1]
    reasons = Counter(frame["Clearout Reason"])
    reached = len(frame) - reasons["Request cancelled"]
    assert reached == int(len(emails) * progress["percentile"] / 100)
    cancelled_rows = frame[frame["Clearout Reason"] == "Request cancelled"]
    assert set(cancelled_rows["Clearout Verification Status"]) == {"Unknown"}
    assert list(cancelled_rows["Email"]) == emails[reached:]
    charged = int((frame.iloc[:reached]["Clearout Verification Status"] != "Unknown").sum())
    assert api.credits() == before - charged


def test_remove_only_when_not_running(make_api):
    api = make_api(profiles=20, bulk_seconds=0.3)
    list_id = api.bulk("r.csv", _csv(EMAILS)).json()["data"]["list_id"]
    refused = api.co("POST", "/email_verify/list/remove", json={"list_id": list_id})
    assert refused.status_code == 200 and refused.json()["status"] == "failed"
    api.wait_completed(list_id)
    removed = api.co("POST", "/email_verify/list/remove", json={"list_id": list_id, "ignore_result": False})
    assert removed.json()["status"] == "success" and removed.json()["data"]["list_id"] == list_id
    assert api.progress(list_id)["error"]["code"] == 1029
    assert api.co("POST", "/download/result", json={"list_id": list_id}).json()["error"]["code"] == 1029


def test_progress_parameter_errors(api):
    missing = api.co("GET", "/email_verify/bulk/progress_status")
    assert missing.status_code == 400 and missing.json()["error"]["message"] == "validation failed"
    empty = api.co("GET", "/email_verify/bulk/progress_status", params={"list_id": ""})
    assert empty.json()["error"]["reasons"][0]["messages"] == ['"list_id" is not allowed to be empty']
    unknown = api.co("GET", "/email_verify/bulk/progress_status", params={"list_id": "5c60eb454506101c9d2f7b17"})
    assert unknown.status_code == 200
    assert unknown.json() == {"status": "failed", "error": {"code": 1029, "message": "List is not available"}}
    for path in ("/download/result", "/email_verify/list/cancel", "/email_verify/list/remove"):
        assert api.co("POST", path, json={}).status_code == 400
        assert api.co("POST", path, json={"list_id": "5c60eb454506101c9d2f7b17"}).json()["error"]["code"] == 1029


def test_missing_file_field_is_400(make_api):
    api = make_api(profiles=20)
    response = api.co("POST", "/email_verify/bulk", files={"attachment": ("a.csv", _csv(EMAILS))})
    assert response.status_code == 400
    assert response.json()["error"]["reasons"][0]["messages"] == ['"file" is required']
    # The connection stays usable after the refused upload.
    assert api.co("GET", "/email_verify/getcredits").status_code == 200
