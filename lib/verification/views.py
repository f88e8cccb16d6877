"""How verification jobs read on the pages: state in words, credits spent and saved, progress."""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from lib import actions
from lib.access import OPERATOR, User, require
from lib import funnel
from lib.figures import Metric, plural
from lib.progress import activity_line, job_subject
from lib.store import Activity, Store, VerificationJob
from lib.verification.balance import Balance
from lib.verification.plan import UNFINISHED_STATES, VerificationPlan, credit_shortage
from lib.verification.verdicts import parts_of
from lib.verification.worker import TOKEN_MISSING

STATE_LABELS = {
    "preparing": "Preparing", "queued": "Queued", "uploading": "Uploading", "verifying": "Verifying",
    "downloading": "Downloading results", "parts": "Verifying in parts", "done": "Done", "failed": "Failed",
    "cancelled": "Cancelled",
}


@dataclass(frozen=True)
class JobView:
    job: VerificationJob
    list_name: str
    label: str         # "Verifying · 42%"
    detail: str        # what it costs and saves, or why it failed
    progress: float    # 0..1, for a progress bar
    cancellable: bool
    decision: str | None = None  # what a person must decide before the job moves, in words
    parts: tuple[JobView, ...] = ()  # a job sent in parts: the latest attempt at each, in order
    retryable_parts: int = 0  # failed parts a person may retry alone
    activity: str | None = None  # what the worker is doing for it now: its step, a wait, retries

    @property
    def needs_decision(self) -> bool:
        return self.decision is not None


def _credits(count: int) -> str:
    return plural(count, "credit")


def describe(job: VerificationJob, list_name: str, parts: Sequence[VerificationJob] = (),
             doing: dict[str, Activity] | None = None) -> JobView:
    """How a job reads on a page: its state in words, credits spent and saved, its error; for a job
    sent in parts (`parts`: the latest attempt at each), how far each part is; while it runs, what the
    worker is doing for it and its parts (`doing`: activities by subject, lib.progress)."""
    doing = doing or {}
    label = STATE_LABELS.get(job.state, job.state)
    if job.state == "verifying":
        label += f" · {job.percent:.0f}%"
    if job.state == "parts":
        label = f"Verifying in {job.parts} parts · {job.percent:.0f}%"
    if job.cancel_requested and not job.is_final:
        label += " · cancelling"
    decision = None
    if job.attention and job.state != "parts" and not job.is_final and not job.cancel_requested:
        label = "Needs your decision"
        decision = uncertain_upload_text(job)
    saved = (f"{_credits(job.cached + job.syntax_invalid)} saved (cache {job.cached:,}, "
             f"syntax check {job.syntax_invalid:,})")
    if job.state == "done":
        detail = f"{_credits(job.credits_spent or 0)} spent · {saved}"
    elif job.is_final:
        detail = job.error or "Stopped before finishing; rows Clearout did not verify are not charged."
    else:
        detail = f"{job.to_verify:,} addresses to verify (at most {_credits(job.to_verify)}) · {saved}"
        if parts:
            done = sum(1 for part in parts if part.state == "done")
            detail = f"{done} of {len(parts)} parts done · " + detail
        if job.error:
            detail += f" · {job.error}"
    progress = {"done": 1.0, "downloading": 1.0, "verifying": job.percent / 100,
                "parts": job.percent / 100}.get(job.state, 0.0)
    if job.cancel_requested:
        progress = min(progress, job.percent / 100)
    part_views = tuple(describe(part, f"Part {part.part_no} of {job.parts}", doing=doing) for part in parts)
    retryable = sum(1 for part in parts if part.state == "failed") if not job.cancel_requested else 0
    return JobView(job=job, list_name=list_name, label=label, detail=detail, progress=progress,
                   cancellable=not job.is_final and not job.cancel_requested and not job.is_part,
                   decision=decision, parts=part_views, retryable_parts=retryable,
                   activity=None if job.is_final else activity_line(doing.get(job_subject(job.id))))


def job_view(store: Store, job: VerificationJob, list_name: str) -> JobView:
    """`describe`, with the parts of a job sent in parts and what the worker does for them now."""
    parts = parts_of(store, job) if job.parts else []
    running = [j for j in (job, *parts) if not j.is_final]
    return describe(job, list_name, parts, store.activities([job_subject(j.id) for j in running]))


def in_flight_text(job: VerificationJob, list_name: str) -> str:
    """Said to whoever would start a list that is being verified: since when, by whom, how far."""
    since = job.created_at.replace("T", " ")[11:16]
    who = f", started by {job.requested_by}" if job.requested_by else ""
    return (f"{list_name} is already being verified since {since} UTC{who} ({describe(job, list_name).label}): "
            "follow it below.")


def uncertain_upload_text(job: VerificationJob) -> str:
    """What a person needs to know to decide about an upload whose answer never came back."""
    when = (job.upload_started_at or "").replace("T", " ")[:16]
    size = f", {job.upload_bytes / 1e6:.1f} MB" if job.upload_bytes else ""
    checking = (f" Checking list {job.attach_list_id} with Clearout…" if job.attach_list_id else
                " Uploading again, as confirmed…" if job.reupload_confirmed_by else "")
    return (f"The upload of {job.upload_name} ({job.to_verify:,} addresses{size}) left at {when} UTC and its "
            "answer never came back (the app stopped, or the connection broke). Clearout may already hold this "
            "list and charge it. Look for it on app.clearout.io → Email Verifier: if it is there, paste its list "
            "id below and the app fetches its result, with no new charge. Only if it is not there, upload again."
            + checking)


def job_views(store: Store, mode: str, *, limit: int = 20, unfinished_only: bool = False) -> list[JobView]:
    """The latest jobs of a mode, newest first, ready to render."""
    states = UNFINISHED_STATES if unfinished_only else None
    jobs = store.list_jobs(mode=mode, states=states, limit=limit)
    names = {record.id: record.name for record in store.list_lists(mode)}
    return [job_view(store, job, names.get(job.list_id, f"list {job.list_id}")) for job in jobs]


def cancel(store: Store, job_id: int, *, user: User) -> VerificationJob | None:
    """Cancel a job: queued ones stop at once, running ones when the worker has told Clearout.

    Raises:
        NotAllowed: `user` is not an operator.
    """
    require(user, OPERATOR, "Cancelling a verification")
    job = store.cancel_job(job_id)
    actions.record(store, user, "verify_cancelled", target=f"job {job_id}")
    return job


def waiting_reason(store: Store, mode: str, *, has_token: bool) -> str | None:
    """Why jobs are not moving (the app holds no Clearout token), or None."""
    if store.unfinished_job_count(mode) and not has_token:
        return TOKEN_MISSING
    return None


# ---- the Verify page's decisions ----------------------------------------------------------------
def cost_metrics(plan: VerificationPlan, balance: Balance, reserved: int, cache_days: int) -> list[Metric]:
    """What a run costs, as the Verify page shows it before anything is spent: the funnel's distinct
    addresses (the same number Lists and Results show) split into what is free and what is bought."""
    held = f"; {reserved:,} of it held for jobs already started" if reserved else ""
    stages = funnel.verdict_stages(plan.unique_emails, plan.syntax_invalid, plan.cached, plan.to_verify, done=False)
    notes = ["addresses", "free", f"free (≤ {cache_days} days)", "credits at most"]
    return [stage.metric(note) for stage, note in zip(stages, notes)] + [
        Metric("Credits available", "—" if balance.available is None else f"{balance.available:,}",
               help=f"Your Clearout balance{held}" + (f" (read {_age(balance)})" if balance.as_of else "")),
    ]


def _age(balance: Balance) -> str:
    seconds = max(0, int(time.time() - (balance.as_of or 0)))
    return "just now" if seconds < 5 else f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


@dataclass(frozen=True)
class StartReadiness:
    """What the Verify page says before the start button, and how that button reads."""
    tone: str | None     # info | warning | error | success | None
    message: str | None
    label: str
    primary: bool
    disabled: bool


def start_readiness(plan: VerificationPlan, balance: Balance, reserved: int, *, list_name: str,
                    running: VerificationJob | None, verified_before: bool,
                    part_rows: int = 500_000) -> StartReadiness:
    """Whether a run can start now and what to say: in flight, balance unknown, not enough credits,
    nothing to buy. A list verified before is offered "Verify again" as a secondary action: its
    verdicts are on Results already, so spending more is not the obvious next step."""
    label = f"{'Verify again' if verified_before else 'Start verification'} ({plural(plan.to_verify, 'credit')})"
    tone: str | None = None
    message: str | None = None
    blocked = plan.unique_emails == 0
    if running is not None:
        tone, message, blocked = "info", in_flight_text(running, list_name), True
    elif plan.to_verify and balance.available is None:
        tone, message, blocked = "warning", f"The Clearout balance is not known yet: {balance.message}", True
    elif plan.to_verify and balance.available is not None and (
            shortage := credit_shortage(plan.to_verify, balance.available, reserved)):
        tone, message, blocked = "error", shortage.message, True
    elif not plan.to_verify and plan.unique_emails:
        tone, message = "success", ("Nothing to buy: every address has a fresh verdict or fails the syntax check. "
                                    "Starting finishes at once, without using Clearout.")
    elif (parts := plan.parts(part_rows)) > 1:
        tone, message = "info", (f"These {plan.to_verify:,} addresses go to Clearout as {parts} files of at most "
                                 f"{part_rows:,} (Clearout's advice). The parts queue through Clearout's three slots "
                                 "with the other lists; a part that fails is retried alone.")
    return StartReadiness(tone, message, label, primary=not verified_before, disabled=blocked)
