"""Planning a run (cost, cache freshness, syntax check), starting it, and the verdicts file."""
from __future__ import annotations

from datetime import datetime, timedelta, UTC
from pathlib import Path

import pandas as pd
import pytest

from lib import columns as C
from lib.verification import addresses
from lib.verification import plan as V
from lib.verification import verdicts as VD
from lib.errors import UserError
from lib.store import Store
from tests.verification.support import make_list, start, verdicts

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data")


def to_buy(store: Store, list_id: int, cache_days: int = 30) -> list[str]:
    """The addresses an upload file would hold now, sorted."""
    folder = store.data_dir / "probe"
    _, files = addresses.write_uploads(store, store.list_record(list_id), fresh_since=V.fresh_since(cache_days, NOW),
                                       part_rows=1_000, folder=folder)
    found = sorted(line for path, _ in files for line in path.read_text().splitlines()[1:])
    for path, _ in files:
        path.unlink()
    return found


def test_plan_counts_unique_normalised_addresses_syntax_failures_and_cache(store: Store) -> None:
    record = make_list(store, ["A@x.com", " a@x.com ", "b@x.com", "c@x.com", "broken@", "no at sign",
                               None, "", "d@x.com", "D@X.COM", "e@x.com"])
    store.upsert_cache(verdicts(["b@x.com", "c@x.com"]), verified_on=iso(NOW - timedelta(days=1)))

    plan = V.plan_verification(store, record.id, cache_days=30, now=NOW)

    # distinct normalised: a, b, c, broken@, "no at sign", d, e
    assert (plan.unique_emails, plan.cached, plan.syntax_invalid, plan.to_verify) == (7, 2, 2, 3)
    assert plan.unique_emails == plan.cached + plan.syntax_invalid + plan.to_verify
    assert to_buy(store, record.id) == ["a@x.com", "d@x.com", "e@x.com"]
    assert plan.credits_saved == 4


@pytest.mark.parametrize("age_days, status, reused", [
    (1, C.VALID, True),        # fresh: reused
    (29, C.INVALID, True),     # fresh, any decided status
    (31, C.VALID, False),      # stale: bought again
    (1, C.UNKNOWN, False),     # unknown: never reused, however fresh
])
def test_cache_freshness_rules(store: Store, age_days: int, status: str, reused: bool) -> None:
    record = make_list(store, ["kept@x.com", "new@x.com"])
    store.upsert_cache(verdicts(["kept@x.com"], status), verified_on=iso(NOW - timedelta(days=age_days)))

    plan = V.plan_verification(store, record.id, cache_days=30, now=NOW)

    assert plan.cached == (1 if reused else 0)
    assert ("kept@x.com" in to_buy(store, record.id)) is not reused


def test_freshness_window_follows_the_setting(store: Store) -> None:
    record = make_list(store, ["kept@x.com"])
    store.upsert_cache(verdicts(["kept@x.com"]), verified_on=iso(NOW - timedelta(days=10)))
    assert V.plan_verification(store, record.id, cache_days=30, now=NOW).cached == 1
    assert V.plan_verification(store, record.id, cache_days=7, now=NOW).cached == 0


def test_fresh_cached_emails_scan_and_join_paths_agree(store: Store) -> None:
    cached = [f"u{i}@x.com" for i in range(50)]
    store.upsert_cache(verdicts(cached[:40]), verified_on=iso(NOW))
    store.upsert_cache(verdicts(cached[40:], C.UNKNOWN), verified_on=iso(NOW))
    since = V.fresh_since(30, NOW)
    small = ["u1@x.com", "u45@x.com", "other@x.com"]  # cache (50) > 4 x 3: temp-table join
    big = cached + [f"o{i}@x.com" for i in range(20)]  # scan of the fresh part
    assert sorted(store.fresh_cached_emails(small, fresh_since=since)) == ["u1@x.com"]
    assert sorted(store.fresh_cached_emails(big, fresh_since=since)) == sorted(cached[:40])
    assert store.fresh_cached_emails(["u1@x.com"], fresh_since=iso(NOW + timedelta(seconds=1))) == []


def test_start_writes_only_the_addresses_to_buy_and_queues(store: Store) -> None:
    record = make_list(store, ["a@x.com", "b@x.com", "B@x.com", "bad@@x", "c@x.com"], name="Spring promo")
    store.upsert_cache(verdicts(["c@x.com"]), verified_on=iso(NOW))

    job = start(store, record.id, 100, now=NOW)

    assert job.state == "queued"
    assert (job.unique_emails, job.cached, job.syntax_invalid, job.to_verify) == (4, 1, 1, 2)
    lines = (store.job_dir(job.id) / "upload.csv").read_text().splitlines()
    assert lines[0] == "Email" and sorted(lines[1:]) == ["a@x.com", "b@x.com"]
    assert job.upload_name == f"Spring-promo-job{job.id}.csv"


def test_insufficient_credits_starts_nothing(store: Store) -> None:
    record = make_list(store, [f"p{i}@x.com" for i in range(10)])
    with pytest.raises(V.InsufficientCreditsError) as caught:
        start(store, record.id, 7, now=NOW)
    assert caught.value.shortfall == 3
    assert "at least 3 more" in caught.value.message and "clearout.io" in caught.value.message
    assert store.list_jobs() == []
    assert not (store.data_dir / "jobs").exists()


def test_credits_held_by_started_jobs_count_against_the_balance(store: Store) -> None:
    first = make_list(store, [f"p{i}@x.com" for i in range(6)], name="first")
    second = make_list(store, [f"q{i}@x.com" for i in range(6)], name="second")
    start(store, first.id, 10, now=NOW)
    assert store.reserved_credits("sandbox") == 6
    with pytest.raises(V.InsufficientCreditsError) as caught:
        start(store, second.id, 10, now=NOW)
    assert caught.value.reserved == 6 and caught.value.shortfall == 2
    assert store.reserved_credits("live") == 0


def test_nothing_to_buy_is_done_at_once_with_a_full_verdicts_file(store: Store) -> None:
    record = make_list(store, ["a@x.com", "A@x.com ", "b@x.com", "not-an-address", None])
    store.upsert_cache(verdicts(["a@x.com", "b@x.com"], C.INVALID), verified_on=iso(NOW))

    job = start(store, record.id, None, now=NOW)

    assert job.state == "done" and job.credits_spent == 0 and job.to_verify == 0
    assert not (store.job_dir(job.id) / "upload.csv").exists()
    result = pd.read_parquet(store.job_verdicts_path(job.id)).set_index("email")
    assert sorted(result.index) == ["a@x.com", "b@x.com", "not-an-address"]
    assert list(result.columns) == [*C.CLEAROUT_COLUMN_NAMES, C.VERDICT_SOURCE]
    assert result.loc["a@x.com", C.VERDICT_SOURCE] == C.SOURCE_CACHED
    assert result.loc["a@x.com", C.STATUS] == C.INVALID
    syntax = result.loc["not-an-address"]
    assert (syntax[C.STATUS], syntax[C.SAFE_TO_SEND], syntax[C.REASON], syntax[C.VERDICT_SOURCE]) == \
        (C.INVALID, C.NO, "Syntax error", C.SOURCE_SYNTAX)


def test_verdicts_file_joins_new_cached_and_syntax_and_flags_missing(store: Store) -> None:
    record = make_list(store, ["new1@x.com", "new2@x.com", "old@x.com", "bad address"])
    store.upsert_cache(verdicts(["old@x.com"]), verified_on=iso(NOW))
    job = start(store, record.id, 10, now=NOW)
    new = C.conform_clearout_columns(verdicts(["new1@x.com"], C.CATCH_ALL), keep=("email",))
    VD.write_result(store, job, new)

    assert VD.write_job_verdicts(store, job) == 4

    result = pd.read_parquet(store.job_verdicts_path(job.id)).set_index("email")
    assert result.index.is_unique
    assert result.loc["new1@x.com", C.STATUS] == C.CATCH_ALL
    assert result.loc["new1@x.com", C.VERDICT_SOURCE] == C.SOURCE_NEW
    assert (result.loc["new2@x.com", C.STATUS], result.loc["new2@x.com", C.REASON]) == \
        (C.UNKNOWN, VD.MISSING_REASON)
    assert result.loc["old@x.com", C.VERDICT_SOURCE] == C.SOURCE_CACHED
    assert result.loc["bad address", C.VERDICT_SOURCE] == C.SOURCE_SYNTAX


def test_credits_spent_skips_unknown() -> None:
    frame = pd.concat([verdicts(["a@x.com", "b@x.com"]), verdicts(["c@x.com"], C.UNKNOWN)])
    assert VD.credits_spent(C.conform_clearout_columns(frame, keep=("email",))) == 2


def test_a_list_that_is_not_ready_cannot_be_planned(store: Store) -> None:
    record = store.create_list(name="pulling", mode="sandbox", source_kind="csv", source="x.csv")
    with pytest.raises(V.VerificationError, match="not ready"):
        V.plan_verification(store, record.id, cache_days=30)


def test_a_list_in_flight_cannot_be_started_again(store: Store) -> None:
    record = make_list(store, ["a@x.com"])
    first = start(store, record.id, 10)
    with pytest.raises(UserError, match="already being verified"):
        start(store, record.id, 10)
    store.cancel_job(first.id)
    assert start(store, record.id, 10).state == "queued"


def test_cached_verdicts_scan_and_join_paths_agree(store: Store) -> None:
    emails = [f"u{i}@x.com" for i in range(40)]
    store.upsert_cache(verdicts(emails[::-1]))  # any order in, key order kept by the store
    few = ["u3@x.com", "u7@x.com", "nobody@x.com"]         # 4 x 3 < 40: temporary-table join
    many = emails[:30] + ["nobody@x.com"]                   # 4 x 31 >= 40: scan and filter
    assert sorted(store.cached_verdicts(few)["email"]) == ["u3@x.com", "u7@x.com"]
    assert sorted(store.cached_verdicts(many)["email"]) == sorted(emails[:30])
    assert sorted(store.cached_verdicts(iter(few))["email"]) == ["u3@x.com", "u7@x.com"]
