"""lib/download_links.py and the route that serves its links (lib/ui/download_route.py), over HTTP
through Starlette's test client: expiry, headers, the streamed file, the audit callback."""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from lib import columns as co
from lib import download_links, downloads, merge, resultset
from lib.filters import Selection, filter_rows
from lib.store import Store
from lib.ui.download_route import ROUTES, content_disposition
from tests.results_support import make_verified_list


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data")


def offer(store: Store, merged: Path, **changes: object) -> str:
    values: dict[str, object] = dict(data_dir=store.data_dir, merged=merged, selection=Selection(),
                                     file_format=download_links.CSV, flavour=downloads.SPREADSHEET,
                                     file_name="Zoë's list_clearout_results.csv", rows=0)
    values.update(changes)
    return download_links.offer(download_links.Download(**values))  # type: ignore[arg-type]


def test_a_link_lives_its_ttl_and_unknown_tokens_are_refused(store: Store) -> None:
    token = offer(store, Path("x"), rows=1)
    assert download_links.take(token) is not None
    assert download_links.take(token, now=download_links.time.time() + download_links.LINK_TTL_S + 1) is None
    assert download_links.take("not-a-token") is None


def test_the_route_streams_the_filtered_rows_with_an_attachment_header(store: Store) -> None:
    fx = make_verified_list(store, rows=300)
    reference = merge.append_verdicts(fx.rows, "Email", fx.verdicts)
    fetched: list[str] = []
    chosen = Selection(statuses=(co.INVALID,))
    token = offer(store, resultset.merged_path(store, fx.job.id), selection=chosen,
                  on_start=lambda: fetched.append("yes"))
    client = TestClient(Starlette(routes=ROUTES))
    answer = client.get(f"/{download_links.ROUTE}/{token}")
    assert answer.status_code == 200 and fetched == ["yes"]
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["cache-control"] == "no-store"
    assert "filename*=UTF-8''Zo%C3%AB%27s%20list_clearout_results.csv" in answer.headers["content-disposition"]
    assert answer.content == downloads.to_csv_bytes(filter_rows(reference, statuses=[co.INVALID]))
    assert len(pd.read_csv(io.BytesIO(answer.content))) == (reference[co.STATUS] == co.INVALID).sum() > 0


def test_an_expired_link_says_what_to_do(store: Store) -> None:
    client = TestClient(Starlette(routes=ROUTES))
    answer = client.get(f"/{download_links.ROUTE}/gone")
    assert answer.status_code == 404 and "press Download again" in answer.text


def test_excel_links_stream_a_workbook_and_refuse_past_the_sheet(store: Store, monkeypatch) -> None:
    fx = make_verified_list(store, rows=120)
    path = resultset.merged_path(store, fx.job.id)
    token = offer(store, path, file_format=download_links.XLSX, rows=120, file_name="x.xlsx")
    data = b"".join(download_links.body(download_links.take(token)))
    assert data[:2] == b"PK"
    monkeypatch.setattr(downloads, "EXCEL_MAX_DATA_ROWS", 100)
    with pytest.raises(downloads.TooManyRowsForExcel):
        b"".join(download_links.body(download_links.take(token)))


def test_content_disposition_has_an_ascii_fallback() -> None:
    header = content_disposition('Zoë "big" list.csv')
    assert header == ('attachment; filename="Zo_ _big_ list.csv"; '
                      "filename*=UTF-8''Zo%C3%AB%20%22big%22%20list.csv")
    assert header.encode("latin-1")  # a header must be latin-1
