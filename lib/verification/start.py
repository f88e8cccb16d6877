"""Starting a verification: one run per list at a time, the balance checked, the request recorded.

The page prices a run (lib/verification/plan.py) and records the request here; the worker process
prepares it (plans again and writes the upload file, `prepare_job`) and takes it through Clearout.
"""
from __future__ import annotations

from datetime import datetime

from lib.store import Store, VerificationJob, utc_now
from lib.verification.plan import (UNFINISHED_STATES, UPLOAD_FILE, VerificationError, VerificationPlan,
                                   credit_shortage, plan_verification, upload_name, write_upload_file)
from lib.verification.verdicts import write_job_verdicts


def unfinished_job(store: Store, list_id: int) -> VerificationJob | None:
    """The list's job still in flight, if any: one run per list at a time, or credits are spent twice."""
    jobs = store.list_jobs(list_id=list_id, states=UNFINISHED_STATES, limit=1)
    return jobs[0] if jobs else None


def start_verification(store: Store, cost: VerificationPlan, *, available_credits: int | None,
                       mode: str) -> VerificationJob:
    """Record the request to verify a list at the price the user saw; the worker does the rest.

    Args:
        cost: the run as priced on the page (`plan_verification`); its `to_verify` is the most this
            run may buy (the worker refuses to spend more if the cache changed meanwhile).
        available_credits: the Clearout balance as last read; None when it is not known.

    Raises:
        InsufficientCreditsError: the balance, minus credits held by jobs already started, is short.
        VerificationError: the list cannot be verified (already in flight, balance unknown).
    """
    if running := unfinished_job(store, cost.list_id):
        raise VerificationError(f"This list is already being verified (job {running.id}, "
                                f"{running.state}): follow it below, or cancel it to start again.")
    if cost.to_verify:
        if available_credits is None:
            raise VerificationError("The Clearout balance is not known yet: wait a moment for it to be read, "
                                    "or enter your Clearout token on Connect.")
        if shortage := credit_shortage(cost.to_verify, available_credits, store.reserved_credits(mode)):
            raise shortage
    # 'preparing': the worker writes the upload file first (it plans again: the cache may have grown).
    return store.create_job(list_id=cost.list_id, unique_emails=cost.unique_emails, cached=cost.cached,
                            syntax_invalid=cost.syntax_invalid, to_verify=cost.to_verify, state="preparing")


def prepare_job(store: Store, job: VerificationJob, *, cache_days: int, now: datetime | None = None) -> VerificationJob:
    """In the worker: plan the job again, write its upload file, and queue it (or finish it at once,
    with no Clearout call, when nothing is left to buy)."""
    plan = plan_verification(store, job.list_id, cache_days=cache_days, now=now)
    if plan.to_verify > job.to_verify:
        store.transition_job(job.id, ("preparing",), state="failed", finished_at=utc_now(),
                             error=f"The price changed since the start ({job.to_verify:,} → {plan.to_verify:,} "
                                   "credits: cached verdicts expired meanwhile). Nothing was charged: start again "
                                   "to see the new price.")
        return store.job(job.id)
    counts = dict(unique_emails=plan.unique_emails, cached=plan.cached, syntax_invalid=plan.syntax_invalid,
                  to_verify=plan.to_verify)
    if not plan.to_verify:
        store.transition_job(job.id, ("preparing",), **counts)
        write_job_verdicts(store, store.job(job.id), new_verdicts=None)
        store.transition_job(job.id, ("preparing",), state="done", credits_spent=0, percent=100.0,
                             started_at=utc_now(), finished_at=utc_now())
    else:
        write_upload_file(plan.upload, store.job_dir(job.id) / UPLOAD_FILE)
        store.transition_job(job.id, ("preparing",), state="queued",
                             upload_name=upload_name(store.list_record(job.list_id), job.id), **counts)
    return store.job(job.id)
