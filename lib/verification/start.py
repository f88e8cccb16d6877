"""Starting a verification: one run per list at a time, the balance checked, the request recorded.

The page prices a run (lib/verification/plan.py) and records the request here; the worker process
prepares it (plans again and writes the upload file, `prepare_job`) and takes it through Clearout.
"""
from __future__ import annotations

import re
from datetime import datetime

from lib import actions
from lib.access import OPERATOR, User, require
from lib.store import ActiveJobExists, Store, VerificationJob, utc_now
from lib.verification import addresses
from lib.verification.plan import (UNFINISHED_STATES, VerificationError, VerificationPlan, credit_shortage,
                                   fresh_since, ready_list, upload_name)
from lib.verification.verdicts import finish_verdicts, parts_of

PART_ROWS = 500_000  # settings.verify_part_rows: Clearout advises at most this many rows per bulk file


def unfinished_job(store: Store, list_id: int) -> VerificationJob | None:
    """The list's job still in flight, if any: one run per list at a time, or credits are spent twice."""
    jobs = store.list_jobs(list_id=list_id, states=UNFINISHED_STATES, limit=1)
    return jobs[0] if jobs else None


def start_verification(store: Store, cost: VerificationPlan, *, available_credits: int | None,
                       mode: str, user: User) -> VerificationJob:
    """Record the request to verify a list at the price the user saw; the worker does the rest.

    Args:
        cost: the run as priced on the page (`plan_verification`); its `to_verify` is the most this
            run may buy (the worker refuses to spend more if the cache changed meanwhile).
        available_credits: the Clearout balance as last read; None when it is not known.

    Raises:
        NotAllowed: `user` is not an operator (a verification spends credits).
        InsufficientCreditsError: the balance, minus credits held by jobs already started, is short.
        ActiveJobExists: the list is being verified already (by whom, since when): one run per list,
            or the same addresses are paid for twice. The store checks it in the same step as the insert.
        VerificationError: the balance is unknown.
    """
    require(user, OPERATOR, "Starting a verification")
    if running := unfinished_job(store, cost.list_id):
        raise ActiveJobExists(running)
    if cost.to_verify:
        if available_credits is None:
            raise VerificationError("The Clearout balance is not known yet: wait a moment for it to be read, "
                                    "or enter your Clearout token on Connect.")
        if shortage := credit_shortage(cost.to_verify, available_credits, store.reserved_credits(mode)):
            raise shortage
    # 'preparing': the worker writes the upload file first (it plans again: the cache may have grown).
    job = store.create_job(list_id=cost.list_id, unique_emails=cost.unique_emails, cached=cost.cached,
                           syntax_invalid=cost.syntax_invalid, to_verify=cost.to_verify, state="preparing",
                           requested_by=user.email)
    actions.record(store, user, "verify_started", target=f"job {job.id}: {store.list_record(cost.list_id).name}",
                   detail=f"at most {cost.to_verify:,} credits", mode=mode)
    return job


def prepare_job(store: Store, job: VerificationJob, *, cache_days: int, part_rows: int = PART_ROWS,
                now: datetime | None = None) -> VerificationJob:
    """In the worker: plan the job again and write its upload file, then queue it; or, above
    `part_rows` addresses to buy, write one file per part and queue a part job for each (the job
    waits in 'parts'); or finish it at once, with no Clearout call, when nothing is left to buy."""
    record = ready_list(store, job.list_id)
    folder = store.job_dir(job.id)
    counts, files = addresses.write_uploads(store, record, fresh_since=fresh_since(cache_days, now),
                                            part_rows=part_rows, folder=folder)
    if counts.to_verify > job.to_verify:
        for path, _ in files:
            path.unlink(missing_ok=True)
        store.transition_job(job.id, ("preparing",), state="failed", finished_at=utc_now(),
                             error=f"The price changed since the start ({job.to_verify:,} → {counts.to_verify:,} "
                                   "credits: cached verdicts expired meanwhile). Nothing was charged: start again "
                                   "to see the new price.")
        return store.job(job.id)
    values = dict(unique_emails=counts.unique_emails, cached=counts.cached, syntax_invalid=counts.syntax_invalid,
                  to_verify=counts.to_verify)
    name = upload_name(record, job.id)
    if not files:
        store.transition_job(job.id, ("preparing",), **values)
        finish_verdicts(store, store.job(job.id))
        store.transition_job(job.id, ("preparing",), state="done", credits_spent=0, percent=100.0,
                             started_at=utc_now(), finished_at=utc_now())
    elif len(files) == 1:
        store.transition_job(job.id, ("preparing",), state="queued", upload_name=name, **values)
    else:
        store.split_job(job.id, [rows for _, rows in files], upload_name=name, **values)
    return store.job(job.id)


def retry_failed_parts(store: Store, job_id: int, *, user: User) -> list[VerificationJob]:
    """Queue a new attempt at each failed part of a job, alone: the parts already done are kept.

    A part Clearout holds already (it failed after its upload) is fetched again, not bought again.

    Raises:
        VerificationError: no part waits for a retry (retried already, or the job moved on).
    """
    require(user, OPERATOR, "Retrying failed parts")
    job = store.job(job_id)
    retried = [attempt for part in parts_of(store, job) if part.state == "failed"
               if (attempt := store.retry_part(job.id, part.part_no or 0, requested_by=user.email))]
    if not retried:
        raise VerificationError("No part of this verification waits for a retry: see its state below.")
    actions.record(store, user, "parts_retried", target=f"job {job_id}: {store.list_record(job.list_id).name}",
                   detail=f"parts {', '.join(str(a.part_no) for a in retried)}")
    return retried


# ---- an upload whose outcome is unknown: a person decides ------------------------------------------
LIST_ID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")


def attach_list_id(store: Store, job_id: int, list_id: str, *, user: User) -> VerificationJob:
    """Use the list Clearout already holds (its id from app.clearout.io): the worker checks it with
    Clearout before using it, then fetches its result. No new upload, no new charge.

    Raises:
        NotAllowed: `user` is not an operator.
        VerificationError: the id does not look like one, or the job no longer waits for a decision.
    """
    require(user, OPERATOR, "Deciding about an uncertain upload")
    list_id = list_id.strip()
    if not LIST_ID.match(list_id):
        raise VerificationError("Paste the list id from app.clearout.io → Email Verifier (letters and digits, "
                                "e.g. 5f8a1c2b3d4e5f6a7b8c9d0e).")
    if not store.transition_job(job_id, ("uploading",), attach_list_id=list_id, error=None) or \
            not store.job(job_id).attention:
        raise VerificationError("This verification no longer waits for a decision: see its state below.")
    actions.record(store, user, "upload_attached", target=f"job {job_id}", detail=f"Clearout list {list_id}")
    return store.job(job_id)


def confirm_upload_again(store: Store, job_id: int, *, credits_at_risk: int, user: User) -> VerificationJob:
    """Upload the list again, accepting that Clearout may charge it twice.

    Args:
        credits_at_risk: the number the person confirmed; it must be the job's, so that what they
            read is what they accept.

    Raises:
        NotAllowed: `user` is not an operator.
        VerificationError: the number is not the job's, or the job no longer waits for a decision.
    """
    require(user, OPERATOR, "Uploading again")
    job = store.job(job_id)
    if not job.attention:
        raise VerificationError("This verification no longer waits for a decision: see its state below.")
    if credits_at_risk != job.to_verify:
        raise VerificationError(f"Confirm the credits at risk: {job.to_verify:,}.")
    store.transition_job(job_id, ("uploading",), reupload_confirmed_by=user.email, error=None)
    actions.record(store, user, "upload_again", target=f"job {job_id}", detail=f"{credits_at_risk:,} credits at risk")
    return store.job(job_id)
