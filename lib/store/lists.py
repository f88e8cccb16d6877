"""Lists ("My lists"): their records; each list's rows live in `lists/<id>.parquet`."""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Sequence

from lib.processes import lease_is_free
from lib.store.db import Database
from lib.store.records import ListRecord, from_row, from_rows, must_exist, utc_now


def free_name(taken: Iterable[str], name: str) -> str:
    """`name`, or `name (2)`, `name (3)`… when one of `taken` is called that already (case aside): two
    lists both named "messy" could not be told apart on any page."""
    used = {other.casefold() for other in taken}
    if name.casefold() not in used:
        return name
    number = 2
    while f"{name} ({number})".casefold() in used:
        number += 1
    return f"{name} ({number})"


class ListsStore(Database):
    # ---- file locations -------------------------------------------------------------------
    def list_path(self, list_id: int) -> Path:
        return self.data_dir / "lists" / f"{list_id}.parquet"

    def list_keys_path(self, list_id: int) -> Path:
        """Each row's normalised address and syntax check (lib.listkeys), in the list's row order."""
        return self.data_dir / "lists" / f"{list_id}.keys.parquet"

    def job_dir(self, job_id: int) -> Path:
        return self.data_dir / "jobs" / str(job_id)

    def job_verdicts_path(self, job_id: int) -> Path:
        """A finished job's verdicts: `email` (normalised, unique), the 15 Clearout columns and
        the verdict source, for every address of the list (cached, new, or failed syntax)."""
        return self.job_dir(job_id) / "verdicts.parquet"

    # ---- lists ----------------------------------------------------------------------------
    _LIST_FIELDS = ("name", "state", "error", "email_column", "identity_column", "object_id_column",
                    "msg_email_column", "rows", "valid_emails", "unique_emails", "duplicates",
                    "missing_emails", "expected_rows", "distinct_addresses")

    def create_list(self, *, name: str, mode: str, source_kind: str, source: str,
                    state: str = "pulling", audience_id: int | None = None,
                    connection_id: int | None = None, expected_rows: int | None = None,
                    lease_owner: str | None = None, lease_seconds: float | None = None,
                    unique: bool = False, replacing: int | None = None) -> ListRecord:
        """A new list; `lease_owner` holds it for `lease_seconds` (a CSV import in progress: the pull
        worker takes only a list whose lease is free). With `unique`, the name is made free among the
        lists of the mode (`free_name`; `replacing` is a list about to go) in the insert's transaction:
        two people adding the same file at once get "messy" and "messy (2)"."""
        now = utc_now()
        until = None if lease_owner is None or lease_seconds is None else time.time() + lease_seconds
        with self._tx() as con:
            if unique:
                taken = con.execute("SELECT name FROM lists WHERE mode = ? AND id IS NOT ?", (mode, replacing))
                name = free_name((row["name"] for row in taken), name)
            cur = con.execute(
                """INSERT INTO lists (name, mode, source_kind, source, audience_id, connection_id,
                                      state, expected_rows, created_at, updated_at, lease_owner, lease_until)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (name, mode, source_kind, source, audience_id, connection_id, state, expected_rows,
                 now, now, lease_owner, until))
        return self.list_record(int(cur.lastrowid or 0))

    def update_list(self, list_id: int, **changes: Any) -> ListRecord:
        changes["updated_at"] = utc_now()
        self._update("lists", "id", list_id, changes, (*self._LIST_FIELDS, "updated_at"))
        return self.list_record(list_id)

    def list_record(self, list_id: int) -> ListRecord:
        """The list, which must exist (else StoreError: it was deleted meanwhile)."""
        return must_exist(self.get_list(list_id), "That list no longer exists (deleted meanwhile): pick another one.")

    def get_list(self, list_id: int) -> ListRecord | None:
        return from_row(ListRecord, self._one("SELECT * FROM lists WHERE id = ?", (list_id,)))

    def list_lists(self, mode: str, *, states: Sequence[str] | None = None) -> list[ListRecord]:
        sql, args = "SELECT * FROM lists WHERE mode = ?", [mode]
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += list(states)
        rows = self._all(sql + " ORDER BY created_at DESC, id DESC", args)
        return from_rows(ListRecord, rows)

    def fail_unfinished_lists(self, mode: str, error: str) -> int:
        """Mark every list still 'pulling' in `mode` as failed (at startup: nothing can finish it)."""
        with self._tx() as con:
            cur = con.execute("UPDATE lists SET state = 'failed', error = ?, updated_at = ? "
                              "WHERE mode = ? AND state = 'pulling'", (error, utc_now(), mode))
        return cur.rowcount

    def delete_list(self, list_id: int) -> None:
        """Delete a list, its verification jobs and their files. Export history is kept."""
        job_ids = [r["id"] for r in self._all("SELECT id FROM verification_jobs WHERE list_id = ?",
                                              (list_id,))]
        with self._tx() as con:
            con.execute("DELETE FROM lists WHERE id = ?", (list_id,))
        self.list_path(list_id).unlink(missing_ok=True)
        self.list_keys_path(list_id).unlink(missing_ok=True)
        for job_id in job_ids:
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    # ---- pulls: a list in 'pulling' is a request for the worker ---------------------------
    def claim_pull(self, owner: str, *, mode: str, lease_seconds: float) -> ListRecord | None:
        """Lease the oldest list waiting to be pulled whose lease is free (or whose owner died)."""
        now = time.time()
        with self._tx() as con:
            rows = con.execute("SELECT id, lease_owner, lease_until FROM lists WHERE mode = ? AND state = 'pulling' "
                               "ORDER BY id", (mode,)).fetchall()
            chosen = next((r["id"] for r in rows if lease_is_free(r["lease_owner"], r["lease_until"], owner, now)),
                          None)
            if chosen is None:
                return None
            con.execute("UPDATE lists SET lease_owner = ?, lease_until = ? WHERE id = ?",
                        (owner, now + lease_seconds, chosen))
        return self.list_record(chosen)

    def renew_pull_lease(self, list_id: int, owner: str, *, lease_seconds: float | None) -> bool:
        """Extend (or with None release) this owner's lease on a pull; False if it lost it."""
        until = None if lease_seconds is None else time.time() + lease_seconds
        with self._tx() as con:
            cur = con.execute("UPDATE lists SET lease_owner = ?, lease_until = ? WHERE id = ? AND "
                              "(lease_owner IS NULL OR lease_owner = ?)",
                              (owner if lease_seconds is not None else None, until, list_id, owner))
        return cur.rowcount == 1
