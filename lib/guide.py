"""The Home page's "what next": the five steps, which are done, and the recent lists at a glance."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from lib.export.views import UndoStatus, undo_statuses
from lib.funnel import list_stages
from lib.listkeys import with_distinct_addresses

# One icon per page, the same in the navigation, the Home steps and every link to the page. Streamlit
# bundles the Material Symbols font: emoji would need an emoji font, which many machines lack.
PAGE_ICONS = {
    "pages/home.py": ":material/home:",
    "pages/connect.py": ":material/link:",
    "pages/lists.py": ":material/list_alt:",
    "pages/verify.py": ":material/verified:",
    "pages/results.py": ":material/analytics:",
    "pages/export.py": ":material/upload:",
    "pages/history.py": ":material/history:",
}

if TYPE_CHECKING:
    from lib.store import ExportRun, Store


@dataclass(frozen=True)
class Step:
    number: int
    title: str
    page: str    # the page script, for st.page_link
    icon: str
    done: bool
    status: str  # what is there already, or what to do


def steps(store: Store, mode: str, *, has_token: bool) -> list[Step]:
    """The workflow in order, each with its state in this mode."""
    connections = store.list_connections(mode)
    ready = store.list_lists(mode, states=("ready",))
    verified = {job.list_id for job in store.list_jobs(states=("done",), mode=mode)}
    runs = store.list_export_runs(mode=mode, kinds=("export", "undo"))
    exports = [r for r in runs if r.kind == "export" and r.state == "done"]  # undo and retry runs aside

    # Verifying needs only the Clearout token; CleverTap is needed for audiences and for export.
    clevertap = (f"CleverTap: {connections[0].name}" + (f" (+{len(connections) - 1} more)" if len(connections) > 1
                                                         else "") if connections
                 else "no CleverTap project yet (needed for audiences and export)")
    connect = (f"Clearout token set · {clevertap}" if has_token
               else f"Enter your Clearout API token · {clevertap}")
    return [
        Step(1, "Connect", "pages/connect.py", PAGE_ICONS["pages/connect.py"], has_token, connect),
        Step(2, "Lists", "pages/lists.py", PAGE_ICONS["pages/lists.py"], bool(ready),
             f"{len(ready)} list{'s' if len(ready) != 1 else ''} ready" if ready
             else "Create a list from a CSV file or a CleverTap audience"),
        Step(3, "Verify", "pages/verify.py", PAGE_ICONS["pages/verify.py"], bool(verified),
             f"{len(verified)} list{'s' if len(verified) != 1 else ''} verified" if verified
             else "See what verifying a list costs, then start it"),
        Step(4, "Results", "pages/results.py", PAGE_ICONS["pages/results.py"], bool(verified),
             "Review the verdicts, charts and downloads" if verified
             else "Verdicts appear here once a list is verified"),
        Step(5, "Export", "pages/export.py", PAGE_ICONS["pages/export.py"], bool(exports),
             exports_text(exports, undo_statuses(store, runs)) if exports
             else "Write the verdicts back to CleverTap (unsubscribe, append columns)"),
    ]


def exports_text(exports: list[ExportRun], undone: dict[int, UndoStatus]) -> str:
    """`2 export runs applied to CleverTap (1 undone, 1 partly undone)`: an undone run is still counted
    as applied, and said to be undone."""
    words = [undone[r.id].word for r in exports if r.id in undone]
    said = [f"{words.count(w)} {w}" if len(exports) > 1 else w
            for w in ("undone", "partly undone", "undo running", "undo failed", "undo stopped") if w in words]
    return (f"{len(exports)} export run{'s' if len(exports) != 1 else ''} applied to CleverTap"
            + (f" ({', '.join(said)})" if said else ""))


def next_step(all_steps: list[Step]) -> Step | None:
    return next((step for step in all_steps if not step.done), None)


def recent_lists(store: Store, mode: str, limit: int = 5) -> pd.DataFrame:
    """The newest lists: name, rows, distinct addresses (lib.funnel), state, and when last verified."""
    records = [with_distinct_addresses(store, record) for record in store.list_lists(mode)[:limit]]
    rows = []
    for record in records:
        done = store.latest_done_job(record.id)
        rows.append({
            "List": record.name,
            "Rows": record.rows,
            "Distinct addresses": next(s.count for s in list_stages(record) if s.label == "Distinct addresses"),
            "State": {"ready": "Ready", "pulling": "Pulling…", "failed": "Failed"}.get(record.state, record.state),
            "Verified": (done.finished_at or "").replace("T", " ")[:16] + " UTC" if done else "Not yet",
        })
    return pd.DataFrame(rows, columns=["List", "Rows", "Distinct addresses", "State", "Verified"])
