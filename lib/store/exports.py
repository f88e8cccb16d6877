"""Export runs: a run's planned per-profile changes, its batches (row ranges) and their outcomes."""
from __future__ import annotations

import itertools
import json
import sqlite3
import time
from typing import Any
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from lib.processes import lease_is_free
from lib.store.audit import insert_audit
from lib.store.db import Database
from lib.store.records import (Connection, DuplicateRun, ExportBatch, ExportRun, from_row, from_rows, must_exist,
                               utc_now)

_WRITE_CHUNK = 50_000

# A change's outcome as read: a record still 'pending' in a batch recorded as done was sent and
# accepted (finish_export_batch writes only the exceptions: unprocessed and skipped records).
_OUTCOME = "CASE WHEN c.outcome = 'pending' AND b.state = 'done' THEN 'ok' ELSE c.outcome END"
_CHANGES_WITH_BATCH = ("FROM export_changes c JOIN export_batches b "
                       "ON b.run_id = c.run_id AND b.batch_no = c.batch_no")


class ExportsStore(Database):
    # ---- export runs ----------------------------------------------------------------------
    _RUN_FIELDS = ("state", "planned_records", "batches_total", "processed", "unprocessed",
                   "counts_json", "error", "lease_owner", "lease_until", "started_at", "finished_at")

    def create_export_run(self, *, kind: str, list_id: int | None, job_id: int | None,
                          connection: Connection, list_name: str, actions: list[str],
                          policy: dict[str, Any], method: str, actor: str,
                          parent_run_id: int | None = None, tag: str = "",
                          counts: dict[str, Any] | None = None, runs_seen: int | None = None) -> ExportRun:
        """A new run ('planned').

        Raises:
            DuplicateRun: this plan (tag) was applied already, this run has an undo already, or a run
                of this list to this project is still sending; checked in the same step as the insert,
                so two people applying together get one run between them; or (with `planned_at`, when
                `runs_seen`, the newest run when the dry run began) an export of this list to this project
                since then.
        """
        try:
            with self._tx() as con:
                if runs_seen is not None and list_id is not None and kind == "export":
                    # Another plan's run, ended (the same plan applied twice, or a run still sending, is the
                    # triggers' case below, said more plainly).
                    since = con.execute("SELECT * FROM export_runs WHERE kind = 'export' AND list_id = ? AND "
                                        "connection_id = ? AND id > ? AND tag != ? AND state NOT IN "
                                        "('planned', 'running') ORDER BY id DESC LIMIT 1",
                                        (list_id, connection.id, runs_seen, tag)).fetchone()
                    if since is not None:
                        raise DuplicateRun(
                            f"This list was already applied to {connection.name} after this dry run was made, as "
                            f"run {since['id']} (by {since['actor']}, {since['created_at'].replace('T', ' ')[:16]} "
                            "UTC): see it on History, and make a new dry run only if the list should be sent again.")
                cur = con.execute(
                    """INSERT INTO export_runs (kind, parent_run_id, list_id, job_id, connection_id,
                           account_id, region, list_name, connection_name, actions_json, policy_json,
                           method, mode, tag, actor, state, counts_json, created_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned', ?, ?)""",
                    (kind, parent_run_id, list_id, job_id, connection.id, connection.account_id,
                     connection.region, list_name, connection.name, json.dumps(actions),
                     json.dumps(policy), method, connection.mode, tag, actor, json.dumps(counts or {}),
                     utc_now()))
        except sqlite3.IntegrityError as exc:
            raise self._duplicate(str(exc), tag=tag, parent_run_id=parent_run_id, list_id=list_id,
                                  connection=connection) from None
        return self.export_run(int(cur.lastrowid or 0))

    def _duplicate(self, reason: str, *, tag: str, parent_run_id: int | None, list_id: int | None,
                   connection: Connection) -> DuplicateRun:
        """Why the store refused a run, naming the run already there, who started it and when."""
        def said(run: ExportRun) -> str:
            return f"run {run.id} (by {run.actor}, {run.created_at.replace('T', ' ')[:16]} UTC)"

        # The most telling reason first, whichever trigger fired: the same plan beats a busy list.
        applied = self.list_export_runs(tag=tag, kinds=["export"]) if tag else []
        if applied:
            return DuplicateRun(f"This dry run was already applied as {said(applied[-1])}: make a new dry run "
                                "to export again.")
        undos = [r for r in self.list_export_runs(parent_run_id=parent_run_id, kinds=["undo"]) if r.state != "failed"] \
            if parent_run_id is not None else []
        if undos:
            return DuplicateRun(f"Run {parent_run_id} is already undone by {said(undos[-1])}.")
        active = [r for r in self.list_export_runs(kinds=["export"], states=["planned", "running"])
                  if r.list_id == list_id and r.connection_id == connection.id]
        if active:
            return DuplicateRun(f"An export of this list to {connection.name} is still sending: {said(active[-1])}. "
                                "Wait until it ends, or stop it, then make a new dry run.")
        return DuplicateRun(f"The store refused the run ({reason}).")

    def last_export_run_id(self) -> int:
        """The newest run's id (0 when there is none)."""
        found = self._one("SELECT coalesce(max(id), 0) AS last FROM export_runs")
        return int(found["last"]) if found is not None else 0

    def update_export_run(self, run_id: int, **changes: Any) -> ExportRun:
        if "counts" in changes:
            changes["counts_json"] = json.dumps(changes.pop("counts"))
        self._update("export_runs", "id", run_id, changes, self._RUN_FIELDS)
        return self.export_run(run_id)

    def export_run(self, run_id: int) -> ExportRun:
        """The run, which must exist (runs are never deleted; a wrong id is a StoreError)."""
        return must_exist(self.get_export_run(run_id), f"There is no export run {run_id}.")

    def get_export_run(self, run_id: int) -> ExportRun | None:
        return from_row(ExportRun, self._one("SELECT * FROM export_runs WHERE id = ?", (run_id,)))

    def list_export_runs(self, *, states: Sequence[str] | None = None,
                         parent_run_id: int | None = None, mode: str | None = None,
                         tag: str | None = None, kinds: Sequence[str] | None = None) -> list[ExportRun]:
        sql, args = "SELECT * FROM export_runs WHERE 1 = 1", list[Any]()
        for column, value in (("mode", mode), ("tag", tag)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args += list(kinds)
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += list(states)
        if parent_run_id is not None:
            sql += " AND parent_run_id = ?"
            args.append(parent_run_id)
        return from_rows(ExportRun, self._all(sql + " ORDER BY id DESC", args))

    def add_export_changes(self, run_id: int, changes: Iterable[pd.DataFrame], *, batch_size: int) -> int:
        """Record the planned per-profile changes of a run and create its batches, in one transaction
        (a plan is recorded whole or not at all; a run recorded already is left as it is).

        `changes`: frames, in send order, with the columns key_type, key_value, email, unsubscribe
        (bool), prior_msg_email (bool or NA), properties_json (str or NA), and optionally prior_source
        (where the state before came from; without it, `list` where prior_msg_email is known). Row
        order decides batches of `batch_size`; a batch is a contiguous range of row_no (which
        `export_batch_rows` relies on).
        """
        def col(part: pd.DataFrame, name: str, as_int: bool = False) -> list[Any]:
            values = pa.array(part[name], from_pandas=True)  # NA, NaN and None become null -> None
            listed: list[Any] = (values.cast(pa.int64()) if as_int else values).to_pylist()
            return listed

        n = 0
        with self._tx() as con:
            if con.execute("SELECT 1 FROM export_batches WHERE run_id = ? LIMIT 1", (run_id,)).fetchone():
                return int(con.execute("SELECT planned_records FROM export_runs WHERE id = ?", (run_id,)).fetchone()[0])
            # In slices: Python objects for a million rows at once would cost several hundred MB.
            # One transaction, rows in primary-key order: a million rows take ~2.5 s, mostly SQLite's.
            for frame in changes:
                for start in range(0, len(frame), _WRITE_CHUNK):
                    part = frame.iloc[start:start + _WRITE_CHUNK]
                    row_no = np.arange(n, n + len(part))
                    priors = col(part, "prior_msg_email", as_int=True)
                    sources = (col(part, "prior_source") if "prior_source" in part.columns
                               else [None if v is None else "list" for v in priors])
                    con.executemany(
                        """INSERT INTO export_changes (run_id, row_no, batch_no, key_type, key_value, email,
                               unsubscribe, prior_msg_email, properties_json, prior_source)
                           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                        zip(itertools.repeat(run_id), row_no.tolist(), (row_no // batch_size).tolist(),
                            col(part, "key_type"), col(part, "key_value"), col(part, "email"),
                            col(part, "unsubscribe", as_int=True), priors, col(part, "properties_json"), sources))
                    n += len(part)
            counts = [min(batch_size, n - first) for first in range(0, n, batch_size)]
            con.executemany("INSERT INTO export_batches (run_id, batch_no, state, first_row, records) "
                            "VALUES (?, ?, 'pending', ?, ?)",
                            [(run_id, b, b * batch_size, c) for b, c in enumerate(counts)])
            con.execute("UPDATE export_runs SET planned_records = ?, batches_total = ? WHERE id = ?",
                        (n, len(counts), run_id))
        return n

    def export_changes(self, run_id: int, *, batch_no: int | None = None,
                       outcomes: Sequence[str] | None = None, limit: int | None = None) -> pd.DataFrame:
        sql = ("SELECT c.row_no, c.batch_no, c.key_type, c.key_value, c.email, c.unsubscribe, "
               f"c.prior_msg_email, c.properties_json, {_OUTCOME} AS outcome, c.error_code, c.error, c.prior_source "
               f"{_CHANGES_WITH_BATCH} WHERE c.run_id = ?")
        args: list[Any] = [run_id]
        if batch_no is not None:  # a batch is a row_no range: a primary-key range scan
            batch = "FROM export_batches WHERE run_id = ? AND batch_no = ?)"
            sql += f" AND c.row_no >= (SELECT first_row {batch} AND c.row_no < (SELECT first_row + records {batch}"
            args += [run_id, batch_no, run_id, batch_no]
        if outcomes:
            sql += f" AND {_OUTCOME} IN ({','.join('?' * len(outcomes))})"
            args += list(outcomes)
        sql += " ORDER BY c.row_no"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return pd.read_sql_query(sql, self._connection(), params=args)

    def export_batches(self, run_id: int, *, states: Sequence[str] | None = None) -> list[ExportBatch]:
        sql, args = "SELECT * FROM export_batches WHERE run_id = ?", list[Any]([run_id])
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += list(states)
        return from_rows(ExportBatch, self._all(sql + " ORDER BY batch_no", args))

    def finish_export_batch(self, run_id: int, batch_no: int, *, state: str, processed: int,
                            unprocessed: Sequence[tuple[int, int | None, str]] = (),
                            error: str | None = None, audit: dict[str, Any] | None = None,
                            skipped: Sequence[tuple[int, str]] = ()) -> None:
        """Record one batch's outcome, its records' outcomes and the audit entry atomically.

        `unprocessed` holds (row_no, code, error) for records the CRM refused and `skipped`
        (row_no, why) for records deliberately not sent; every other record of a 'done' batch is
        'ok'. Doing it in one transaction is what lets a restart trust that a 'done' batch was
        sent and recorded, and never send it again.

        'ok' is not written row by row: a pending record of a done batch reads as 'ok' (see
        `_OUTCOME`). Rewriting a thousand rows per batch cost more than the rest of the batch's
        bookkeeping together, and an export keeps 15 calls in flight.
        """
        self.finish_export_batches(run_id, [dict(batch_no=batch_no, state=state, processed=processed,
                                                 unprocessed=unprocessed, error=error, audit=audit,
                                                 skipped=skipped)])

    def finish_export_batches(self, run_id: int, batches: Sequence[dict[str, Any]]) -> None:
        """`finish_export_batch` for several batches in one transaction (each dict holds its arguments)."""
        now = utc_now()
        with self._tx() as con:
            for batch in batches:
                self._finish_batch(con, run_id, now=now, **batch)

    def _finish_batch(self, con: sqlite3.Connection, run_id: int, *, batch_no: int, state: str, processed: int,
                      now: str, unprocessed: Sequence[tuple[int, int | None, str]] = (),
                      error: str | None = None, audit: dict[str, Any] | None = None,
                      skipped: Sequence[tuple[int, str]] = ()) -> None:
        con.execute("""UPDATE export_batches SET state = ?, processed = ?, unprocessed = ?,
                       attempts = attempts + 1, error = ?, finished_at = ?
                       WHERE run_id = ? AND batch_no = ?""",
                    (state, processed, len(unprocessed), error, now, run_id, batch_no))
        if state == "done":
            con.executemany("UPDATE export_changes SET outcome = 'unprocessed', error_code = ?, error = ? "
                            "WHERE run_id = ? AND row_no = ?",
                            [(code, text, run_id, row_no) for row_no, code, text in unprocessed])
            con.executemany("UPDATE export_changes SET outcome = 'skipped', error = ? "
                            "WHERE run_id = ? AND row_no = ?",
                            [(why, run_id, row_no) for row_no, why in skipped])
        if audit is not None:
            insert_audit(con, run_id=run_id, batch_no=batch_no, **audit)

    def export_batch_rows(self, run_id: int, batch_no: int) -> list[tuple[Any, ...]]:
        """One batch's changes as plain tuples (row_no, key_type, key_value, unsubscribe,
        properties_json), in row order: what the apply runner sends, and no more (each column read
        costs the runner, which reads 150 batches a second)."""
        con = self._connection()
        batch = con.execute("SELECT first_row, records FROM export_batches WHERE run_id = ? AND batch_no = ?",
                            (run_id, batch_no)).fetchone()
        if batch is None:
            return []
        cursor = con.cursor()
        cursor.row_factory = None  # plain tuples: the runner reads a thousand rows per batch
        # A primary-key range scan: five times faster than looking rows up by batch_no.
        return cursor.execute(
            "SELECT row_no, key_type, key_value, unsubscribe, properties_json "
            "FROM export_changes WHERE run_id = ? AND row_no >= ? AND row_no < ? ORDER BY row_no",
            (run_id, batch["first_row"], batch["first_row"] + batch["records"])).fetchall()

    def export_progress(self, run_id: int) -> dict[str, int]:
        """Batches and records of a run so far: batches_done/_failed/_total, processed, unprocessed."""
        rows = self._all("SELECT state, COUNT(*) AS n, SUM(processed) AS p, SUM(unprocessed) AS u "
                         "FROM export_batches WHERE run_id = ? GROUP BY state", (run_id,))
        by_state = {r["state"]: r for r in rows}
        done = by_state.get("done")
        return {"batches_total": sum(r["n"] for r in rows),
                "batches_done": done["n"] if done else 0,
                "batches_failed": by_state["failed"]["n"] if "failed" in by_state else 0,
                "processed": sum(r["p"] or 0 for r in rows),
                "unprocessed": sum(r["u"] or 0 for r in rows)}

    def export_change_sample(self, run_id: int, size: int, *, outcome: str) -> pd.DataFrame:
        """A random sample of a run's changes with one outcome, unsubscribes first (the read-back
        check answers "are the undeliverable ones unsubscribed?")."""
        return pd.read_sql_query(
            "SELECT c.row_no, c.key_type, c.key_value, c.email, c.unsubscribe, c.prior_msg_email, "
            f"c.properties_json, c.prior_source {_CHANGES_WITH_BATCH} WHERE c.run_id = ? AND {_OUTCOME} = ? "
            "ORDER BY c.unsubscribe DESC, RANDOM() LIMIT ?", self._connection(),
            params=[run_id, outcome, int(size)])

    def export_outcome_counts(self, run_id: int) -> dict[str, int]:
        """How many of a run's changes are pending, ok, unprocessed or skipped."""
        rows = self._all(f"SELECT {_OUTCOME} AS outcome, COUNT(*) AS n {_CHANGES_WITH_BATCH} "
                         "WHERE c.run_id = ? GROUP BY 1", (run_id,))
        return {r["outcome"]: r["n"] for r in rows}

    def export_skip_reasons(self, run_id: int) -> dict[str, int]:
        """How many of a run's records were deliberately not sent, by the reason recorded."""
        rows = self._all("SELECT error, COUNT(*) AS n FROM export_changes WHERE run_id = ? AND outcome = 'skipped' "
                         "GROUP BY error", (run_id,))
        return {str(r["error"] or ""): int(r["n"]) for r in rows}

    def set_change_priors(self, run_id: int, priors: Sequence[tuple[int, bool | None, str]]) -> None:
        """Record, per (row_no, value, source), the MSG-email value a profile had before the run, read just
        before sending, and where it came from: `read` (found), `no_profile` (CleverTap has no profile
        with the key, so there was no state to read: the value stays unknown)."""
        with self._tx() as con:
            con.executemany("UPDATE export_changes SET prior_msg_email = ?, prior_source = ? "
                            "WHERE run_id = ? AND row_no = ?",
                            [(None if v is None else int(v), source, run_id, r) for r, v, source in priors])

    def export_batch_sources(self, run_id: int, batch_no: int) -> dict[int, str | None]:
        """Per row of one batch, where its state before came from (a run that checks profiles first
        reads it to know which rows may find no profile)."""
        rows = self._all("SELECT c.row_no, c.prior_source FROM export_changes c JOIN export_batches b "
                         "ON b.run_id = c.run_id AND b.batch_no = ? WHERE c.run_id = ? AND c.row_no >= b.first_row "
                         "AND c.row_no < b.first_row + b.records", (batch_no, run_id))
        return {int(r["row_no"]): r["prior_source"] for r in rows}

    def claim_export_run(self, owner: str, *, lease_seconds: float, mode: str) -> ExportRun | None:
        """Lease the run this worker should apply now, or None.

        One run at a time per mode: CleverTap allows 15 concurrent uploads per account and a run
        uses them all. A run leased by another live owner whose lease has not expired blocks the rest;
        a dead owner's lease (a worker killed mid-run) is taken over at once.
        """
        now = time.time()
        with self._tx() as con:
            rows = con.execute("SELECT id, lease_owner, lease_until FROM export_runs "
                               "WHERE state = 'running' AND mode = ? ORDER BY id", (mode,)).fetchall()
            if any(not lease_is_free(r["lease_owner"], r["lease_until"], owner, now) for r in rows):
                return None
            if not rows:
                return None
            run_id = rows[0]["id"]
            con.execute("UPDATE export_runs SET lease_owner = ?, lease_until = ? WHERE id = ?",
                        (owner, now + lease_seconds, run_id))
        return self.export_run(run_id)

    def renew_export_lease(self, run_id: int, owner: str, *, lease_seconds: float | None) -> bool:
        """Extend (or with None release) this owner's lease; False if another owner holds it."""
        with self._tx() as con:
            cur = con.execute(
                "UPDATE export_runs SET lease_owner = ?, lease_until = ? WHERE id = ? AND "
                "(lease_owner IS NULL OR lease_owner = ?)",
                (owner if lease_seconds is not None else None,
                 time.time() + lease_seconds if lease_seconds is not None else None, run_id, owner))
        return cur.rowcount == 1
