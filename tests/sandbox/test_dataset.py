"""The seeded dataset: deterministic, realistic defects, and a realistic verdict spread."""
from __future__ import annotations

import io
import re
from collections import Counter
from datetime import UTC

import pandas as pd
import requests

from lib.emails import is_valid_syntax, normalise_email
from tests.sandbox.conftest import TIMEOUT, Api


def test_same_seed_same_dataset_other_seed_other_dataset(make_sandbox, api):
    twin = Api(make_sandbox(seed=7, profiles=2_000))
    assert twin.all_records() == api.all_records()
    other = Api(make_sandbox(seed=8, profiles=2_000)).all_records()
    assert [r.get("email") for r in other[:50]] != [r.get("email") for r in api.all_records()[:50]]


def test_the_dataset_has_the_defects_of_real_lists(api):
    records = api.all_records()
    assert len(records) == 2_000
    emails = [r.get("email") for r in records]
    present = [e for e in emails if e is not None]
    share = lambda n: n / len(records)
    assert 0.02 < share(emails.count(None)) < 0.07                                     # missing
    assert 0.01 < share(sum(e != e.strip() for e in present)) < 0.05                   # spaces
    assert 0.005 < share(sum(not is_valid_syntax(normalise_email(e)) for e in present)) < 0.04
    normalised = Counter(normalise_email(e) for e in present)
    case_only = {k for k, n in normalised.items() if n > 1
                 and len({e for e in present if normalise_email(e) == k}) > 1}
    assert len(case_only) > 10
    domains = Counter(normalise_email(e).rpartition("@")[2] for e in present)
    assert domains.most_common(1)[0][0] == "gmail.com"
    assert {"gmial.com", "yaho.com", "hotmial.com"} & set(domains)
    assert {"mailinator.com", "yopmail.com", "guerrillamail.com"} & set(domains)
    assert sum(normalise_email(e).split("@")[0] in ("info", "support", "sales", "hello", "contact")
               for e in present) > 10
    unsubscribed = sum(not r["profileData"]["MSG-email"] for r in records)
    assert 0.03 < share(unsubscribed) < 0.08
    identities = [r.get("identity") for r in records]
    assert 0 < identities.count(None) < 0.1 * len(records)                              # objectId only
    assert all(re.fullmatch(r"\d+|user_\d+", i) for i in identities if i is not None)
    assert all(re.fullmatch(r"__[0-9a-f]{32}", r["platformInfo"][0]["objectId"]) for r in records)
    assert all(r["profileData"]["Name"] for r in records)


def test_event_dates_fall_in_the_90_days_before_the_anchor(api):
    from datetime import datetime

    anchor = datetime(api.sb.anchor_date.year, api.sb.anchor_date.month, api.sb.anchor_date.day,
                      tzinfo=UTC).timestamp()
    seen = [e for r in api.all_records() for e in r["events"].values()]
    assert seen
    assert all(anchor - 91 * 86400 <= e["first_seen"] <= e["last_seen"] < anchor for e in seen)
    names = {name for r in api.all_records() for name in r["events"]}
    assert {"App Launched", "Charged", "Product Viewed", "Added to Cart"} <= names


def test_verdict_spread_over_the_dataset(make_api, api):
    emails = [r["email"] for r in api.all_records() if r.get("email")]
    private = make_api(bulk_seconds=0.1)
    content = ("Email\n" + "\n".join(f'"{e}"' for e in emails) + "\n").encode()
    list_id = private.bulk("spread.csv", content).json()["data"]["list_id"]
    private.wait_completed(list_id)
    url = private.co("POST", "/download/result", json={"list_id": list_id}).json()["data"]["url"]
    frame = pd.read_csv(io.StringIO(requests.get(url, timeout=TIMEOUT).text), dtype=str, keep_default_na=False)
    frame["key"] = frame["Email"].map(normalise_email)
    unique = frame.drop_duplicates("key")
    spread = unique["Clearout Verification Status"].value_counts(normalize=True)
    assert 0.65 <= spread["Valid"] <= 0.75
    assert 0.10 <= spread["Invalid"] <= 0.15
    assert 0.05 <= spread["Catch All"] <= 0.10
    assert 0.03 <= spread["Unknown"] <= 0.05
    for column in ("Clearout Disposable Status", "Clearout Role Account Status", "Clearout Free Account Status",
                   "Clearout Gibberish Status"):
        assert (unique[column] == "Yes").sum() > 5
    assert (unique["Clearout Suggested Email"] != "").sum() > 5
    assert set(unique.loc[unique["Clearout Verification Status"] == "Invalid", "Clearout Bounce Type"]) \
        <= {"Hard", "Soft"}
    gmail = unique[unique["Clearout Domain"] == "gmail.com"]
    assert set(gmail["Clearout SMTP Provider"]) <= {"Google", ""}


def test_instant_and_bulk_agree(make_api):
    private = make_api(profiles=20, bulk_seconds=0.05)
    addresses = ["Anita.Rao@gmail.com", "support@kestrelpay.in", "x@gmial.com", "q@mailinator.com"]
    instant = [private.co("POST", "/email_verify/instant", json={"email": a}).json()["data"] for a in addresses]
    list_id = private.bulk("agree.csv", ("Email\n" + "\n".join(addresses) + "\n").encode()).json()["data"]["list_id"]
    private.wait_completed(list_id)
    url = private.co("POST", "/download/result", json={"list_id": list_id}).json()["data"]["url"]
    frame = pd.read_csv(io.StringIO(requests.get(url, timeout=TIMEOUT).text), dtype=str, keep_default_na=False)
    from lib.columns import verdict_from_api

    for data, (_, row) in zip(instant, frame.iterrows()):
        expected = verdict_from_api(data)
        for column, value in expected.items():
            if column not in ("Clearout Verified At (UTC)", "Clearout Time Taken (ms)"):
                assert row[column] == (value or ""), column
        assert int(row["Clearout Time Taken (ms)"]) == data["time_taken"]
