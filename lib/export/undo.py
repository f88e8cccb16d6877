"""Undo: re-subscribe what an export run unsubscribed, where it is still as the run left it.

Undo re-subscribes only profiles that the run changed from subscribed (their previous MSG-email was
true, from the list or read just before sending) and that are still as the run left them, checked
with /1/profile.json just before each undo batch is sent:

* unsubscribed before the run (previous value false): never touched;
* previous value unknown (a big CSV list; see PRIOR_LOOKUP_MAX): never touched, and said so;
* subscribed again since (by the user, a form, an import): left alone;
* unsubscribed by a later export of ours: the stamp (STAMP_PROPERTY) names the other run, left alone.

What we cannot tell apart: an unsubscribe by CleverTap itself or an ESP (a bounce, an unsubscribe
link) after our run leaves our stamp in place, so it looks like ours and undo re-subscribes it. Undo
soon after the run to keep that window small. Lists without identities use the address-level
Subscribe API, which cannot stamp anything: undo there can only check that the address is still
unsubscribed. Appended properties are not undone: CleverTap's /1/upload cannot delete a property
and we do not read the values they replaced; they describe the address and are overwritten by the
next Append.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lib import actions
from lib.access import OPERATOR, User, require
from lib.clevertap import MAX_UPLOAD_BATCH, CleverTapClient, Profile
from lib.export.payloads import resubscribe_data
from lib.export.plan import METHOD_SUBSCRIBE, METHOD_UPLOAD, STAMP_PROPERTY
from lib.export.profiles import read_profiles
from lib.export.runs import RESUBSCRIBE_STATUS, ExportError, connection_of, finished_run, hand_over
from lib.store import ExportRun, Store

UNDO_PREVIEW_MAX = 200      # an undo dry run checks the current state of up to this many profiles
SKIP_NOT_FOUND = "not found in CleverTap"
SKIP_SUBSCRIBED = "subscribed again since the run: left alone"
SKIP_OTHER = "unsubscribed again by another run since (the stamp names it): left alone"


def undo_decision(profile: Profile | None, *, method: str, tag: str) -> str | None:
    """None when an undo may re-subscribe this profile now, else why it is left alone."""
    if profile is None:
        return SKIP_NOT_FOUND
    if profile.msg_email is not False:
        return SKIP_SUBSCRIBED
    if method == METHOD_UPLOAD and profile.properties.get(STAMP_PROPERTY) != tag:
        return SKIP_OTHER
    return None


@dataclass(frozen=True)
class UndoPreview:
    """The dry run of an undo: what it will leave alone and why, and the current state of up to
    UNDO_PREVIEW_MAX candidates as read from CleverTap. JSON-able: the worker computes it, pages show it."""
    run_id: int
    counts: dict[str, int]                 # what is excluded and why
    candidates: int                        # profiles to flip back if still as the run left them
    preview: tuple[tuple[str, str, str], ...] = ()  # (key, value, decision), read just now
    checked_all: bool = False              # the preview covered every candidate

    @property
    def will_resubscribe(self) -> int:
        """Exact when `checked_all`; otherwise the number of candidates (each is checked before writing)."""
        if self.checked_all:
            return sum(1 for _, _, decision in self.preview if decision == RESUBSCRIBE_DECISION)
        return self.candidates

    def preview_table(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.preview), columns=["Key", "Value", "Decision"])

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "counts": self.counts, "candidates": self.candidates,
                "preview": [list(row) for row in self.preview], "checked_all": self.checked_all}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UndoPreview:
        return cls(run_id=int(data["run_id"]), counts=dict(data["counts"]), candidates=int(data["candidates"]),
                   preview=tuple((str(k), str(v), str(d)) for k, v, d in data["preview"]),
                   checked_all=bool(data["checked_all"]))


RESUBSCRIBE_DECISION = "re-subscribe"


def undoable_run(store: Store, run_id: int) -> ExportRun:
    """The run, if it can be undone now.

    Raises:
        ExportError: no such run, still running, not an export, only appended, or undone already.
    """
    run = finished_run(store, run_id)
    if run.kind != "export":
        raise ExportError("Only export runs can be undone (a retry is undone with the run it retried).")
    if "unsubscribe" not in run.actions:
        raise ExportError(f"Run {run_id} only appended properties: there is nothing to undo "
                          "(CleverTap cannot delete properties; the next Append overwrites them).")
    undos = [u for u in store.list_export_runs(parent_run_id=run.id, kinds=["undo"]) if u.state != "failed"]
    if undos:
        raise ExportError(f"Run {run_id} is already undone by run {undos[0].id}.")
    return run


def undo_candidates(store: Store, run: ExportRun) -> tuple[pd.DataFrame, dict[str, int]]:
    """The changes of a run (and its retries) that an undo flips back, and what it leaves alone and why."""
    frames = [store.export_changes(r.id) for r in store.list_export_runs(tag=run.tag, kinds=["export", "retry"])]
    changes = pd.concat(frames, ignore_index=True) if frames else store.export_changes(run.id)
    unsub = changes[changes["unsubscribe"].astype(bool)]
    sent = unsub[unsub["outcome"] == "ok"]
    prior = sent["prior_msg_email"]
    candidates = sent[prior == 1].drop_duplicates(["key_type", "key_value"]).reset_index(drop=True)
    # Matching profiles the list already showed unsubscribed were never sent: left alone too.
    never_sent = int(run.counts.get("plan", {}).get("already_unsubscribed", 0))
    counts = {"unsubscribed_by_run": len(sent), "not_sent": len(unsub.drop_duplicates(["key_type", "key_value"]))
              - len(sent), "were_unsubscribed_before": int((prior == 0).sum()) + never_sent,
              "prior_unknown": int(prior.isna().sum()), "candidates": len(candidates)}
    return candidates, counts


def preview_undo(store: Store, run_id: int, client: CleverTapClient | None, *,
                 preview_max: int = UNDO_PREVIEW_MAX) -> UndoPreview:
    """The dry run of undoing an export run's unsubscribes (and those of its retries).

    With a client, the current state of up to `preview_max` candidates is read, so small undos
    are exact before anything is written.
    """
    run = undoable_run(store, run_id)
    candidates, counts = undo_candidates(store, run)
    preview: tuple[tuple[str, str, str], ...] = ()
    if client is not None and len(candidates):
        head = candidates.head(preview_max)
        keys = list(zip(head["key_type"].astype(str), head["key_value"].astype(str)))
        profiles = read_profiles(client, keys)
        preview = tuple((key, value, undo_decision(p, method=run.method, tag=run.tag) or RESUBSCRIBE_DECISION)
                        for (key, value), p in zip(keys, profiles))
    return UndoPreview(run_id=run.id, counts=counts, candidates=len(candidates), preview=preview,
                       checked_all=client is not None and len(preview) == len(candidates))


def start_undo(store: Store, run_id: int, *, user: User, batch_size: int = MAX_UPLOAD_BATCH) -> ExportRun:
    """Record the undo of a run as a run (kind 'undo') and hand it to the worker.

    The candidates are read again from the store: what the dry run showed, unless another undo
    started meanwhile (then this one is refused).

    Raises:
        NotAllowed: `user` is not an operator.
    """
    require(user, OPERATOR, "Undoing an export")
    run = undoable_run(store, run_id)
    candidates, counts = undo_candidates(store, run)
    if candidates.empty:
        raise ExportError("Nothing to undo: no profile was changed from subscribed by this run.")
    connection = connection_of(store, run)
    properties = None if run.method == METHOD_SUBSCRIBE else json.dumps(resubscribe_data(run.tag))
    changes = pd.DataFrame({
        "key_type": candidates["key_type"], "key_value": candidates["key_value"],
        "email": candidates["email"], "unsubscribe": False,
        "prior_msg_email": False,  # the state this undo finds, if the profile is still as the run left it
        "properties_json": properties})
    undo = store.create_export_run(
        kind="undo", parent_run_id=run.id, list_id=run.list_id, job_id=run.job_id, connection=connection,
        list_name=run.list_name, actions=["resubscribe"],
        policy={"undo_of": run.id, "undo_tag": run.tag, "check_before_write": True,
                "subscribe_status": RESUBSCRIBE_STATUS, "stamp_property": run.policy.get("stamp_property")},
        method=run.method, actor=user.email, tag=run.tag + "-undo", counts={"undo": counts})
    undo = hand_over(store, undo, [changes], batch_size)
    actions.record(store, user, "undo_started", target=f"run {undo.id}: undo of run {run.id} ({run.list_name})",
                   detail=f"up to {len(changes):,} profiles re-subscribed", mode=run.mode)
    return undo
