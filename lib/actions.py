"""The named audit: every action a person takes, with who and when (History shows it, and offers a CSV).

Guarded services record their action here once it succeeded; downloads are recorded by the page
when the file is produced (a click). `audit_log` (lib/store/audit.py) stays the record of each
batch written to CleverTap; this is the record of people.
"""
from __future__ import annotations

import csv
import io

import pandas as pd

from lib.access import User
from lib.downloads import neutralise_text
from lib.store import Action, Store

# What each action reads as in History (the store keeps the code).
WORDS = {
    "connect": "Connected a CleverTap project",
    "connection_removed": "Removed a connection",
    "token_saved": "Saved the Clearout token",
    "list_added": "Added a list",
    "list_renamed": "Renamed a list",
    "list_deleted": "Deleted a list",
    "audience_counted": "Counted an audience",
    "pull_started": "Started an audience pull",
    "verify_started": "Started a verification",
    "verify_cancelled": "Cancelled a verification",
    "upload_attached": "Attached a Clearout list to an uncertain upload",
    "upload_again": "Confirmed uploading again (credits at risk)",
    "parts_retried": "Retried the failed parts of a verification",
    "export_applied": "Applied an export to CleverTap",
    "export_stopped": "Stopped an export run",
    "export_resumed": "Resumed an export run",
    "export_retried": "Retried unprocessed records",
    "undo_started": "Started an undo",
    "undo_previewed": "Asked for an undo dry run",
    "read_back": "Asked for a read-back check",
    "download_results": "Downloaded results",
    "download_export_plan": "Downloaded an export plan",
    "download_export_changes": "Downloaded a run's changes",
    "download_audit": "Downloaded the audit",
}
COLUMNS = ["When (UTC)", "Who", "Name", "Role", "Action", "What", "Detail", "Mode"]


def record(store: Store, user: User, action: str, *, target: str = "", detail: str = "",
           mode: str | None = None) -> None:
    """Record that `user` did `action` (a key of WORDS) to `target` now."""
    if action not in WORDS:
        raise ValueError(f"unknown action {action!r}")
    store.record_action(actor_email=user.email, actor_name=user.name, actor_role=user.role, action=action,
                        target=target, detail=detail, mode=mode)


def actions_table(actions: list[Action]) -> pd.DataFrame:
    """History's "Who did what": newest first, in words."""
    return pd.DataFrame([[a.at.replace("T", " ")[:19], a.actor_email, a.actor_name, a.actor_role,
                          WORDS.get(a.action, a.action), a.target, a.detail, a.mode or ""] for a in actions],
                        columns=COLUMNS)


def actions_csv(actions: list[Action]) -> bytes:
    """The audit as CSV, formula-safe (names and list names are user text a spreadsheet would run)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in actions_table(actions).itertuples(index=False):
        writer.writerow([neutralise_text(str(value)) for value in row])
    return out.getvalue().encode("utf-8-sig")
