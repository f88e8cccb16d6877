"""The export worker: applies 'running' runs of one mode, one at a time, in the worker process."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from lib.clevertap import MAX_UPLOAD_CONCURRENCY, CleverTapClient
from lib.errors import UserError
from lib.export.applier import LEASE_SECONDS, RunApplier
from lib.export.runs import ExportError, record_planned
from lib.store import ExportRun, Store, utc_now

log = logging.getLogger(__name__)


class ExportWorker:
    """Takes the next 'running' run of its mode from the store and applies it (one per process).

    Args:
        client_for: the CleverTap client of a run's project (shared: not closed here); raises a
            UserError when it cannot be had (a passcode this app no longer holds): the run waits.
        owner: this process (lib.processes), named in the run's lease.
        stop: set when the process stops; the applier ends after the batches in flight.
    """

    name = "export"

    def __init__(self, store: Store, client_for: Callable[[ExportRun], CleverTapClient], *, mode: str,
                 owner: str, stop: threading.Event | None = None,
                 concurrency: int = MAX_UPLOAD_CONCURRENCY) -> None:
        self.store = store
        self.client_for = client_for
        self.mode = mode
        self.owner = owner
        self.stop = stop or threading.Event()
        self.concurrency = concurrency

    def run_once(self) -> bool:
        """Record a run applied from a plan in files, or apply the next running run; True when one was
        worked on."""
        for planned in self.store.list_export_runs(states=["planned"], mode=self.mode, kinds=["export"]):
            if planned.counts.get("plan_files"):
                try:
                    record_planned(self.store, planned)
                except ExportError:
                    pass  # recorded as failed, with the reason
                except Exception:
                    log.exception("recording export run %s failed", planned.id)
                return True
        run = self.store.claim_export_run(self.owner, lease_seconds=LEASE_SECONDS, mode=self.mode)
        if run is None:
            return False
        try:
            client = self.client_for(run)
        except UserError as exc:
            waiting = f"Waiting: {exc.message} The run resumes by itself then."
            if run.error != waiting:
                self.store.update_export_run(run.id, error=waiting)
            self.store.renew_export_lease(run.id, self.owner, lease_seconds=None)
            return False
        try:
            if run.error:
                self.store.update_export_run(run.id, error=None)
            RunApplier(self.store, run.id, client, concurrency=self.concurrency, stop=self.stop,
                       owner=self.owner).apply()
        except Exception:
            log.exception("export run %s failed", run.id)
            self.store.update_export_run(run.id, state="failed", finished_at=utc_now(),
                                         error="The export stopped on an unexpected error (see the worker "
                                               "log). Finished batches are recorded: resume to send the rest.")
        finally:
            self.store.renew_export_lease(run.id, self.owner, lease_seconds=None)
        return True

    def release(self) -> None:
        """Nothing held between rounds: a run's lease is released when its round ends."""
