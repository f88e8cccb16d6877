"""Verification jobs: their states, the leases of the worker advancing them, credits held."""
from __future__ import annotations

import sqlite3
import time
from typing import Any
from collections.abc import Sequence

from lib.processes import lease_is_free
from lib.store.db import Database
from lib.store.records import (ActiveJobExists, StoreError, VerificationJob, from_row, from_rows, must_exist,
                               utc_now)


def part_upload_name(upload_name: str | None, part_no: int) -> str:
    """`<list>-job12.csv` → `<list>-job12-part3.csv`: unique per part for Clearout's duplicate guard,
    and the same on every attempt at that part."""
    stem = (upload_name or "list.csv").removesuffix(".csv")
    return f"{stem}-part{part_no}.csv"


class JobsStore(Database):
    # ---- verification jobs ----------------------------------------------------------------
    _JOB_FIELDS = ("state", "clearout_list_id", "upload_name", "upload_attempts", "unique_emails",
                   "cached", "syntax_invalid", "to_verify", "credits_spent", "percent", "error",
                   "cancel_requested", "lease_owner", "lease_until", "started_at", "finished_at",
                   "upload_started_at", "upload_bytes", "attention", "attach_list_id", "reupload_confirmed_by",
                   "parts")

    def create_job(self, *, list_id: int, unique_emails: int, cached: int, syntax_invalid: int,
                   to_verify: int, state: str = "queued", requested_by: str = "") -> VerificationJob:
        """A new job; 'preparing' keeps it away from workers until its files are written.

        Raises:
            ActiveJobExists: the list has a job in flight already (checked in the same step as the
                insert, so two people pressing Start together get one job between them).
        """
        now = utc_now()
        try:
            with self._tx() as con:
                cur = con.execute(
                    """INSERT INTO verification_jobs (list_id, state, unique_emails, cached, syntax_invalid,
                                                      to_verify, requested_by, created_at, updated_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (list_id, state, unique_emails, cached, syntax_invalid, to_verify, requested_by, now, now))
        except sqlite3.IntegrityError as exc:
            if "one active verification per list" not in str(exc):
                raise
            active = self.list_jobs(list_id=list_id, states=VerificationJob.UNFINISHED_STATES, limit=1)
            raise ActiveJobExists(active[0] if active else None) from None
        return self.job(int(cur.lastrowid or 0))

    def update_job(self, job_id: int, **changes: Any) -> VerificationJob:
        changes["updated_at"] = utc_now()
        self._update("verification_jobs", "id", job_id, changes, (*self._JOB_FIELDS, "updated_at"))
        return self.job(job_id)

    def job(self, job_id: int) -> VerificationJob:
        """The job, which must exist (else StoreError: its list was deleted meanwhile)."""
        return must_exist(self.get_job(job_id), "That verification no longer exists (its list was deleted).")

    def get_job(self, job_id: int) -> VerificationJob | None:
        return from_row(VerificationJob, self._one("SELECT * FROM verification_jobs WHERE id = ?",
                                                    (job_id,)))

    def list_jobs(self, *, states: Sequence[str] | None = None, list_id: int | None = None,
                  mode: str | None = None, limit: int | None = None,
                  parts_of: int | None = None) -> list[VerificationJob]:
        """Jobs of whole lists, newest first; with `parts_of`, the parts of that job instead."""
        sql = "SELECT j.* FROM verification_jobs j JOIN lists l ON l.id = j.list_id WHERE "
        args: list[Any] = []
        if parts_of is None:
            sql += "j.parent_job_id IS NULL"
        else:
            sql += "j.parent_job_id = ?"
            args.append(parts_of)
        if states:
            sql += f" AND j.state IN ({','.join('?' * len(states))})"
            args += list(states)
        if list_id is not None:
            sql += " AND j.list_id = ?"
            args.append(list_id)
        if mode is not None:
            sql += " AND l.mode = ?"
            args.append(mode)
        sql += " ORDER BY j.id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return from_rows(VerificationJob, self._all(sql, args))

    def latest_done_job(self, list_id: int) -> VerificationJob | None:
        return from_row(VerificationJob, self._one(
            "SELECT * FROM verification_jobs WHERE list_id = ? AND state = 'done' AND parent_job_id IS NULL "
            "ORDER BY id DESC LIMIT 1",
            (list_id,)))

    def claim_jobs(self, owner: str, *, lease_seconds: float, max_active: int,
                   mode: str | None = None) -> list[VerificationJob]:
        """Lease the jobs this worker should advance now, in one transaction.

        Active jobs (uploading, verifying, downloading) whose lease is free, ours, expired or held by a
        dead process come first;
        queued jobs are promoted to 'uploading' while fewer than `max_active` are active across
        the whole store, which is how Clearout's three-lists limit is kept app-wide.
        `mode` limits both to lists of that mode: sandbox and live are different Clearout accounts.
        """
        now = time.time()
        until = now + lease_seconds
        in_mode, mode_args = ("", ()) if mode is None else \
            (" AND list_id IN (SELECT id FROM lists WHERE mode = ?)", (mode,))
        with self._tx() as con:
            active = con.execute(
                f"""SELECT id, lease_owner, lease_until FROM verification_jobs
                    WHERE state IN ({','.join('?' * len(VerificationJob.ACTIVE_STATES))}){in_mode}
                    ORDER BY id""", (*VerificationJob.ACTIVE_STATES, *mode_args)).fetchall()
            mine = [r["id"] for r in active if lease_is_free(r["lease_owner"], r["lease_until"], owner, now)]
            free_slots = max_active - len(active)
            if free_slots > 0:
                queued = con.execute(
                    "SELECT id FROM verification_jobs WHERE state = 'queued' AND cancel_requested = 0"
                    f"{in_mode} ORDER BY id LIMIT ?", (*mode_args, free_slots)).fetchall()
                for row in queued:
                    con.execute("UPDATE verification_jobs SET state = 'uploading', started_at = ?, "
                                "updated_at = ? WHERE id = ?", (utc_now(), utc_now(), row["id"]))
                    mine.append(row["id"])
            # Cancelled while still queued: final at once, nothing was spent.
            con.execute("UPDATE verification_jobs SET state = 'cancelled', finished_at = ?, updated_at = ? "
                        "WHERE state = 'queued' AND cancel_requested = 1", (utc_now(), utc_now()))
            for job_id in mine:
                con.execute("UPDATE verification_jobs SET lease_owner = ?, lease_until = ? WHERE id = ?",
                            (owner, until, job_id))
        return [self.job(job_id) for job_id in mine]

    def claim_preparing_job(self, owner: str, *, lease_seconds: float, mode: str) -> VerificationJob | None:
        """Lease the oldest job waiting for its upload file to be written (free, ours, expired or of a
        dead process), or None."""
        now = time.time()
        with self._tx() as con:
            rows = con.execute("SELECT j.id, j.lease_owner, j.lease_until FROM verification_jobs j "
                               "JOIN lists l ON l.id = j.list_id WHERE j.state = 'preparing' AND l.mode = ? "
                               "ORDER BY j.id", (mode,)).fetchall()
            chosen = next((r["id"] for r in rows if lease_is_free(r["lease_owner"], r["lease_until"], owner, now)),
                          None)
            if chosen is None:
                return None
            con.execute("UPDATE verification_jobs SET lease_owner = ?, lease_until = ? WHERE id = ?",
                        (owner, now + lease_seconds, chosen))
        return self.job(chosen)

    def transition_job(self, job_id: int, from_states: Sequence[str], **changes: Any) -> bool:
        """Apply `changes` only while the job is in one of `from_states`; True if it was."""
        unknown = set(changes) - set(self._JOB_FIELDS)
        if unknown:
            raise StoreError(f"cannot update verification_jobs.{', '.join(sorted(unknown))}")
        changes["updated_at"] = utc_now()
        assignments = ", ".join(f"{name} = ?" for name in changes)
        with self._tx() as con:
            cur = con.execute(
                f"UPDATE verification_jobs SET {assignments} WHERE id = ? "
                f"AND state IN ({','.join('?' * len(from_states))})",
                [*changes.values(), job_id, *from_states])
        return cur.rowcount == 1

    def begin_upload(self, job_id: int, *, size: int) -> bool:
        """Record that an upload is about to leave (when, how big), unless the job was cancelled meanwhile.

        Recorded first so that after a crash a job in 'uploading' with `upload_started_at` but no
        Clearout list id is known to have possibly reached Clearout: it waits for a person's decision
        instead of being uploaded (and paid for) again.
        """
        with self._tx() as con:
            cur = con.execute(
                "UPDATE verification_jobs SET upload_attempts = upload_attempts + 1, upload_started_at = ?, "
                "upload_bytes = ?, attention = NULL, reupload_confirmed_by = NULL, updated_at = ? "
                "WHERE id = ? AND state = 'uploading' AND cancel_requested = 0 AND clearout_list_id IS NULL",
                (utc_now(), size, utc_now(), job_id))
        return cur.rowcount == 1

    def cancel_job(self, job_id: int) -> VerificationJob | None:
        """Cancel at once when nothing can have reached Clearout yet; otherwise flag it for the worker."""
        now = utc_now()
        with self._tx() as con:
            cur = con.execute(
                "UPDATE verification_jobs SET state = 'cancelled', cancel_requested = 1, finished_at = ?, "
                "updated_at = ?, lease_owner = NULL WHERE id = ? AND (state IN ('preparing', 'queued') "
                "OR (state = 'uploading' AND upload_started_at IS NULL AND clearout_list_id IS NULL))",
                (now, now, job_id))
            if cur.rowcount == 0:
                con.execute("UPDATE verification_jobs SET cancel_requested = 1, updated_at = ? "
                            "WHERE id = ? AND state IN ('uploading', 'verifying', 'downloading', 'parts')",
                            (now, job_id))
            # A cancel covers every part: those not sent yet end now, the others at the worker.
            con.execute("UPDATE verification_jobs SET state = 'cancelled', cancel_requested = 1, finished_at = ?, "
                        "updated_at = ?, lease_owner = NULL WHERE parent_job_id = ? AND (state IN ('preparing', "
                        "'queued') OR (state = 'uploading' AND upload_started_at IS NULL "
                        "AND clearout_list_id IS NULL))", (now, now, job_id))
            con.execute("UPDATE verification_jobs SET cancel_requested = 1, updated_at = ? WHERE parent_job_id = ? "
                        "AND state IN ('uploading', 'verifying', 'downloading')", (now, job_id))
        return self.get_job(job_id)

    # ---- parts of a big list ------------------------------------------------------------------
    def split_job(self, job_id: int, part_sizes: Sequence[int], **changes: Any) -> bool:
        """Queue one part per size and put the job in 'parts', in one step; False (and nothing written)
        unless the job is still 'preparing' and not cancelled."""
        now = utc_now()
        changes = {**changes, "parts": len(part_sizes), "state": "parts", "started_at": now, "updated_at": now}
        unknown = set(changes) - {*self._JOB_FIELDS, "updated_at"}
        if unknown:
            raise StoreError(f"cannot update verification_jobs.{', '.join(sorted(unknown))}")
        with self._tx() as con:
            cur = con.execute(
                f"UPDATE verification_jobs SET {', '.join(f'{k} = ?' for k in changes)} "
                "WHERE id = ? AND state = 'preparing' AND cancel_requested = 0", [*changes.values(), job_id])
            if cur.rowcount != 1:
                return False
            parent = con.execute("SELECT list_id, requested_by, upload_name FROM verification_jobs WHERE id = ?",
                                 (job_id,)).fetchone()
            for number, size in enumerate(part_sizes, start=1):
                self._insert_part(con, parent, job_id, number, size, now)
        return True

    def retry_part(self, job_id: int, part_no: int, *, requested_by: str = "") -> VerificationJob | None:
        """A new attempt at a failed part, queued behind the others; None unless the part's latest
        attempt failed and its job still waits in 'parts' (two presses make one retry)."""
        now = utc_now()
        with self._tx() as con:
            parent = con.execute("SELECT list_id, requested_by, upload_name, state, cancel_requested "
                                 "FROM verification_jobs WHERE id = ?", (job_id,)).fetchone()
            latest = con.execute("SELECT state, to_verify, clearout_list_id FROM verification_jobs "
                                 "WHERE parent_job_id = ? "
                                 "AND part_no = ? ORDER BY id DESC LIMIT 1", (job_id, part_no)).fetchone()
            if parent is None or parent["state"] != "parts" or parent["cancel_requested"] or latest is None \
                    or latest["state"] != "failed":
                return None
            # A part Clearout holds already (it failed after the upload) is fetched again, not bought again.
            new_id = self._insert_part(con, parent, job_id, part_no, latest["to_verify"], now,
                                       requested_by=requested_by, clearout_list_id=latest["clearout_list_id"])
            con.execute("UPDATE verification_jobs SET attention = NULL, error = NULL, updated_at = ? WHERE id = ?",
                        (now, job_id))
        return self.job(new_id)

    @staticmethod
    def _insert_part(con: sqlite3.Connection, parent: sqlite3.Row, job_id: int, part_no: int, size: int,
                     now: str, *, requested_by: str | None = None, clearout_list_id: str | None = None) -> int:
        cur = con.execute(
            """INSERT INTO verification_jobs (list_id, state, to_verify, unique_emails, requested_by, upload_name,
                                              parent_job_id, part_no, clearout_list_id, created_at, updated_at)
               VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (parent["list_id"], size, size, requested_by if requested_by is not None else parent["requested_by"],
             part_upload_name(parent["upload_name"], part_no), job_id, part_no, clearout_list_id, now, now))
        return int(cur.lastrowid or 0)

    def release_job_leases(self, owner: str) -> None:
        """A worker stopping cleanly hands its jobs over at once instead of at lease expiry."""
        with self._tx() as con:
            con.execute("UPDATE verification_jobs SET lease_owner = NULL, lease_until = NULL "
                        "WHERE lease_owner = ?", (owner,))

    def unfinished_job_count(self, mode: str) -> int:
        return int(self._scalar(
            "SELECT COUNT(*) FROM verification_jobs j JOIN lists l ON l.id = j.list_id "
            "WHERE l.mode = ? AND j.state NOT IN ('done', 'failed', 'cancelled')", (mode,)))

    def reserved_credits(self, mode: str) -> int:
        """Credits that started jobs will still spend: those not yet handed to Clearout."""
        return int(self._scalar(
            "SELECT COALESCE(SUM(j.to_verify), 0) FROM verification_jobs j JOIN lists l ON l.id = j.list_id "
            "WHERE l.mode = ? AND (j.state = 'preparing' OR (j.state = 'queued' AND j.clearout_list_id IS NULL) OR "
            "(j.state = 'uploading' AND j.clearout_list_id IS NULL))", (mode,)))
