"""What the Export and History pages show of runs: progress, tables of runs, batches, changes, audit."""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from lib.clevertap import MAX_UPLOAD_BATCH
from lib.downloads import SPREADSHEET, csv_chunks
from lib.export.plan import METHOD_SUBSCRIBE, ExportPlan, confirmation_phrase
from lib.figures import Metric, plural
from lib.runtime import Clients, MissingSecretError
from lib.store import Connection, ExportRun, Store


def dashboard_help(region: str, *, undo: bool = False) -> str:
    """Where a person checks the result in CleverTap's own dashboard."""
    host = f"{region.lower()}.dashboard.clevertap.com"
    shows = "no longer shows Email as *Unsubscribed*" if undo else "shows Email as *Unsubscribed*"
    return (f"To see it in the CleverTap dashboard ({host}): open a profile and look at **Communication "
            f"preferences**, which {shows}; or **Segments → Find People → Reachability → Unsubscribed "
            "email** for everyone at once.")


@dataclass(frozen=True)
class RunStatus:
    run: ExportRun
    batches_done: int
    batches_total: int
    processed: int
    unprocessed: int
    skipped: int

    @property
    def fraction(self) -> float:
        return self.batches_done / self.batches_total if self.batches_total else 0.0

    @property
    def waiting(self) -> str | None:
        """Why a running run does not progress (a passcode the server lost after a restart)."""
        return self.run.error if self.run.state == "running" and self.run.error else None

    @property
    def reading_back(self) -> bool:
        """Every batch is sent and the run is reading a sample back from CleverTap."""
        return self.run.state == "running" and self.batches_total > 0 and self.batches_done == self.batches_total

    @property
    def line(self) -> str:
        return (f"{self.batches_done:,} of {self.batches_total:,} batches · {self.processed:,} processed · "
                f"{self.unprocessed:,} unprocessed" + (f" · {self.skipped:,} left alone" if self.skipped else ""))


def run_status(store: Store, run_id: int) -> RunStatus:
    progress = store.export_progress(run_id)
    outcomes = store.export_outcome_counts(run_id)
    return RunStatus(run=store.export_run(run_id), batches_done=progress["batches_done"],
                     batches_total=progress["batches_total"], processed=progress["processed"],
                     unprocessed=progress["unprocessed"], skipped=outcomes.get("skipped", 0))


KIND_WORDS = {"export": "Export", "retry": "Retry", "undo": "Undo"}


def runs_table(runs: Sequence[ExportRun]) -> pd.DataFrame:
    """One row per run for the History page."""
    return pd.DataFrame({
        "Run": [r.id for r in runs],
        "Kind": [KIND_WORDS[r.kind] + (f" of {r.parent_run_id}" if r.parent_run_id else "") for r in runs],
        "When (UTC)": [r.created_at.replace("T", " ")[:19] for r in runs],
        "Who": [r.actor for r in runs],
        "List": [r.list_name for r in runs],
        "Project": [f"{r.connection_name} ({r.account_id}, {r.region})" for r in runs],
        "Actions": [", ".join(r.actions) for r in runs],
        "Policy": [", ".join(r.policy.get("rules") or []) or "-" for r in runs],
        "State": [r.state for r in runs],
        "Records": [r.planned_records for r in runs],
        "Processed": [r.processed for r in runs],
        "Unprocessed": [r.unprocessed for r in runs],
        "Tag": [r.tag for r in runs],
    })


def batches_table(store: Store, run_id: int) -> pd.DataFrame:
    batches = store.export_batches(run_id)
    return pd.DataFrame({"Batch": [b.batch_no + 1 for b in batches], "State": [b.state for b in batches],
                         "Records": [b.records for b in batches], "Processed": [b.processed for b in batches],
                         "Unprocessed": [b.unprocessed for b in batches], "Attempts": [b.attempts for b in batches],
                         "Error": [b.error or "" for b in batches],
                         "Finished (UTC)": [(b.finished_at or "").replace("T", " ")[:19] for b in batches]})


def run_changes(store: Store, run_id: int, *, outcomes: Sequence[str] | None = None,
                limit: int | None = None) -> pd.DataFrame:
    """A run's changes in words with their outcome (the table and download of History)."""
    changes = store.export_changes(run_id, outcomes=outcomes, limit=limit)
    table = changes_table(changes).drop(columns=["Rule", "Clearout status", "Clearout reason"])
    if store.export_run(run_id).kind == "undo":
        table["Action"] = "Re-subscribe"
    table["Outcome"] = changes["outcome"]
    table["Why"] = changes["error"].fillna("")
    return table


def audit_table(store: Store, *, run_id: int | None = None, limit: int = 500) -> pd.DataFrame:
    entries = store.audit_log(run_id=run_id, limit=limit)
    return pd.DataFrame({"When (UTC)": [e.at.replace("T", " ")[:19] for e in entries],
                         "Who": [e.actor for e in entries],
                         "Project": [f"{e.account_id} ({e.region})" for e in entries],
                         "Endpoint": [e.endpoint for e in entries], "Run": [e.run_id for e in entries],
                         "Batch": [None if e.batch_no is None else e.batch_no + 1 for e in entries],
                         "Records": [e.records for e in entries], "Processed": [e.processed for e in entries],
                         "Unprocessed": [e.unprocessed for e in entries], "Outcome": [e.outcome for e in entries],
                         "Detail": [e.detail or "" for e in entries]})


def read_back_table(run: ExportRun) -> pd.DataFrame | None:
    rows = run.counts.get("read_back", {}).get("rows")
    if not rows:
        return None
    return pd.DataFrame({"Key": [r["key_type"] for r in rows], "Value": [r["key_value"] for r in rows],
                         "Expected": [r["expected"] for r in rows], "Found": [r["found"] for r in rows],
                         "Confirmed": [r["confirmed"] for r in rows]})


def reason_counts(plan: ExportPlan) -> pd.DataFrame:
    """Unsubscribes by policy rule and Clearout reason, largest first."""
    return plan.reasons


def changes_table(changes: pd.DataFrame) -> pd.DataFrame:
    """A plan's (or run's) changes in words: what a person reads or downloads."""
    prior = changes["prior_msg_email"].astype("boolean")
    action = np.where(changes["unsubscribe"].astype(bool), "Unsubscribe", "")
    has_props = changes["properties_json"].notna().to_numpy()
    action = np.where(has_props & (action != ""), "Unsubscribe + append", np.where(has_props, "Append", action))
    return pd.DataFrame({
        "Key": changes["key_type"].astype(str),
        "Value": changes["key_value"].astype(str),
        "Email": changes["email"],
        "Action": action,
        "Rule": changes.get("rule", pd.Series(pd.NA, index=changes.index)),
        "Clearout status": changes.get("status", pd.Series(pd.NA, index=changes.index)),
        "Clearout reason": changes.get("reason", pd.Series(pd.NA, index=changes.index)),
        "MSG-email before": prior.map({True: "subscribed", False: "unsubscribed"}).fillna("unknown"),
        "Properties": changes["properties_json"],
    })


CHANGES_SCHEMA = pa.schema([(name, pa.string()) for name in (
    "Key", "Value", "Email", "Action", "Rule", "Clearout status", "Clearout reason", "MSG-email before", "Properties")])


def changes_csv_chunks(batches: Iterable[pd.DataFrame], flavour: str = SPREADSHEET) -> Iterator[bytes]:
    """`changes_table` of each batch of changes as one CSV file (lib.downloads' flavours), streamed."""
    def tables() -> Iterator[pa.RecordBatch]:
        for changes in batches:
            table = changes_table(changes)
            yield pa.RecordBatch.from_arrays(
                [pa.array(table[name].astype("string[pyarrow]").array, pa.string()) for name in CHANGES_SCHEMA.names],
                schema=CHANGES_SCHEMA)
    return csv_chunks(CHANGES_SCHEMA, tables(), flavour=flavour)


def changes_csv(changes: pd.DataFrame, flavour: str = SPREADSHEET) -> bytes:
    """`changes_table` as one CSV file."""
    return b"".join(changes_csv_chunks([changes], flavour))


# ---- the Export page's decisions ----------------------------------------------------------------
def progress_text(status: RunStatus) -> str:
    """The progress bar's words for a run that is not finished."""
    if status.run.state == "planned":
        planned = status.run.counts.get("plan", {}).get("changes")
        return (f"Recording the plan ({planned:,} records) before sending: nothing is sent yet…" if planned
                else "Recording the plan before sending: nothing is sent yet…")
    return ("All sent: reading a sample back from CleverTap… " if status.reading_back else "Sending… ") + status.line


def waiting_for_passcode(clients: Clients, connection: Connection) -> str | None:
    """Why a run to this project would wait (the app no longer holds its passcode), or None."""
    try:
        clients.clevertap(connection)
    except MissingSecretError as exc:
        return f"{exc.message} An export applied now waits until then."
    return None


def plan_metrics(plan: ExportPlan) -> list[Metric]:
    """The dry run's headline: what the list reaches, and what will be sent in how many calls."""
    s = plan.summary
    calls = -(-s.changes // MAX_UPLOAD_BATCH)
    return [
        Metric("Addresses in the list" if plan.method == METHOD_SUBSCRIBE else "Profiles in the list",
               f"{s.profiles:,}", help="Distinct profiles (or addresses) the list can reach"),
        Metric("To unsubscribe", f"{s.to_unsubscribe:,}", f"{s.unsubscribe_pct:.1f}% of the list"),
        Metric("To append to", f"{s.to_append:,}"),
        Metric("Records to send", f"{s.changes:,}",
               f"{plural(calls, 'call')} of ≤{MAX_UPLOAD_BATCH:,}"),
    ]


@dataclass(frozen=True)
class ApplyReadiness:
    label: str
    disabled: bool
    note: str | None  # said before the button (another run still sending)


def apply_readiness(plan: ExportPlan, confirmation: str, connection_name: str,
                    active: ExportRun | None) -> ApplyReadiness:
    """Whether the dry run may be applied now: no errors, something to send, and over the guardrail
    only with the typed confirmation."""
    s = plan.summary
    confirmed = not s.over_guardrail or confirmation.strip() == confirmation_phrase(plan)
    note = f"Run {active.id} is still sending: this one starts when it ends." if active is not None else None
    return ApplyReadiness(f"Apply: send {s.changes:,} records to {connection_name}",
                          disabled=not (plan.can_apply and confirmed), note=note)


def policy_line(run: ExportRun) -> str:
    """A run's tag, rules, appended properties and endpoint in one line (History), plain text."""
    policy = run.policy
    appended = ", ".join(name for _, name in policy.get("properties") or []) or "-"
    how = "per profile (/1/upload)" if run.method == "upload" else "per address (/1/subscribe)"
    return (f"Tag {run.tag} · policy: {', '.join(policy.get('rules') or []) or '-'} · "
            f"appended: {appended} · {how}")
