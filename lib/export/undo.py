"""Undo: re-subscribe what an export run unsubscribed, where it is still as the run left it.

Undo re-subscribes only profiles that the run changed from subscribed (their previous MSG-email was
true, from the list or read just before sending) and that are still as the run left them, checked
with /1/profile.json just before each undo batch is sent:

* unsubscribed before the run (previous value false): never touched;
* previous value unknown (an address CleverTap had no profile for, whose address-level preference no
  API reads; or past PRIOR_LOOKUP_MAX): what the person chose, before applying the run (recorded with
  it) or, for a run without that choice, before undoing: left alone, or re-subscribed ("assumed"
  subscribed before; an address with no profile is then re-subscribed at address level unchecked);
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
from lib.export.plan import (METHOD_SUBSCRIBE, METHOD_UPLOAD, STAMP_PROPERTY, UNKNOWN_PRIOR_CHOICES,
                             UNKNOWN_PRIOR_RESUBSCRIBE)
from lib.export.profiles import read_profiles
from lib.export.runs import RESUBSCRIBE_STATUS, ExportError, connection_of, finished_run, hand_over
from lib.store import ExportRun, Store, utc_now

UNDO_PREVIEW_MAX = 200      # an undo dry run checks the current state of up to this many profiles
SKIP_NOT_FOUND = "not found in CleverTap"
SKIP_SUBSCRIBED = "subscribed again since the run: left alone"
SKIP_OTHER = "unsubscribed again by another run since (the stamp names it): left alone"
# An undo change's prior_source: its state before was unknown, and it is re-subscribed as chosen.
ASSUMED = "assumed"
BEFORE_SUBSCRIBED, BEFORE_UNKNOWN = "subscribed", "unknown"


def undo_decision(profile: Profile | None, *, method: str, tag: str, assumed: bool = False) -> str | None:
    """None when an undo may re-subscribe this profile now, else why it is left alone.

    `assumed`: its state before was unknown and the person chose to re-subscribe such ones. For an
    address with no profile (address-only lists) there is nothing to check: its address-level
    preference is not readable, so it is re-subscribed as chosen.
    """
    if profile is None:
        return None if assumed and method == METHOD_SUBSCRIBE else SKIP_NOT_FOUND
    if profile.msg_email is not False:
        return SKIP_SUBSCRIBED
    if method == METHOD_UPLOAD and profile.properties.get(STAMP_PROPERTY) != tag:
        return SKIP_OTHER
    return None


@dataclass(frozen=True)
class UndoPreview:
    """The dry run of an undo: what it will leave alone and why, and the current state of up to
    UNDO_PREVIEW_MAX candidates as read from CleverTap. JSON-able: the worker computes it, pages show it.

    Candidates include those whose state before is unknown (as if the person chose to re-subscribe
    them), marked BEFORE_UNKNOWN: the page counts either choice from the same preview.
    """
    run_id: int
    counts: dict[str, int]                 # what is excluded and why; `known`: candidates known subscribed
    candidates: int                        # profiles to flip back if still as the run left them
    preview: tuple[tuple[str, str, str, str], ...] = ()  # (key, value, decision, before), read just now
    checked_all: bool = False              # the preview covered every candidate
    choice: str | None = None              # what the run recorded for unknown states before (None: not asked)
    chosen_by: str | None = None

    @property
    def needs_choice(self) -> bool:
        """Some states before are unknown and the run recorded no choice: the person chooses now."""
        return self.choice is None and self.counts.get("prior_unknown", 0) > 0

    def resubscribes(self, choice: str | None) -> int:
        """How many the undo re-subscribes with `choice` for unknown states before: exact when
        `checked_all`, else at most (each is checked before writing)."""
        take_unknown = (self.choice or choice) == UNKNOWN_PRIOR_RESUBSCRIBE
        if self.checked_all:
            return sum(1 for _, _, decision, before in self.preview
                       if decision == RESUBSCRIBE_DECISION and (before == BEFORE_SUBSCRIBED or take_unknown))
        return self.counts.get("known", self.candidates) + (self.counts.get("prior_unknown", 0) if take_unknown else 0)

    @property
    def will_resubscribe(self) -> int:
        return self.resubscribes(self.choice)

    def preview_table(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.preview), columns=["Key", "Value", "Decision", "State before the run"])

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "counts": self.counts, "candidates": self.candidates,
                "preview": [list(row) for row in self.preview], "checked_all": self.checked_all,
                "choice": self.choice, "chosen_by": self.chosen_by}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UndoPreview:
        rows = tuple((str(r[0]), str(r[1]), str(r[2]), str(r[3]) if len(r) > 3 else BEFORE_SUBSCRIBED)
                     for r in data["preview"])
        return cls(run_id=int(data["run_id"]), counts=dict(data["counts"]), candidates=int(data["candidates"]),
                   preview=rows, checked_all=bool(data["checked_all"]), choice=data.get("choice"),
                   chosen_by=data.get("chosen_by"))


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


def undo_candidates(store: Store, run: ExportRun, unknown_prior: str | None = None
                    ) -> tuple[pd.DataFrame, dict[str, int]]:
    """The changes of a run (and its retries) that an undo flips back, and what it leaves alone and why.

    Those whose state before is unknown are candidates when the run recorded the choice to re-subscribe
    them, or (for a run without a choice) `unknown_prior` says so; they carry `assumed` True.
    """
    frames = [store.export_changes(r.id) for r in store.list_export_runs(tag=run.tag, kinds=["export", "retry"])]
    changes = pd.concat(frames, ignore_index=True) if frames else store.export_changes(run.id)
    unsub = changes[changes["unsubscribe"].astype(bool)]
    sent = unsub[unsub["outcome"] == "ok"]
    prior = sent["prior_msg_email"]
    keys = ["key_type", "key_value"]
    known = sent[prior == 1].drop_duplicates(keys).assign(assumed=False)
    unknown = sent[prior.isna()].drop_duplicates(keys).assign(assumed=True)
    take_unknown = (run.policy.get("unknown_prior") or unknown_prior) == UNKNOWN_PRIOR_RESUBSCRIBE
    candidates = (pd.concat([known, unknown], ignore_index=True) if take_unknown else known).reset_index(drop=True)
    # Matching profiles the list already showed unsubscribed were never sent: left alone too.
    never_sent = int(run.counts.get("plan", {}).get("already_unsubscribed", 0))
    counts = {"unsubscribed_by_run": len(sent), "not_sent": len(unsub.drop_duplicates(keys)) - len(sent),
              "were_unsubscribed_before": int((prior == 0).sum()) + never_sent,
              "prior_unknown": int(prior.isna().sum()),
              "no_profile": int((sent["prior_source"] == "no_profile").sum()) if "prior_source" in sent else 0,
              "known": len(known), "assumed": len(unknown) if take_unknown else 0, "candidates": len(candidates)}
    return candidates, counts


def preview_undo(store: Store, run_id: int, client: CleverTapClient | None, *,
                 preview_max: int = UNDO_PREVIEW_MAX) -> UndoPreview:
    """The dry run of undoing an export run's unsubscribes (and those of its retries).

    With a client, the current state of up to `preview_max` candidates is read, so small undos
    are exact before anything is written. Candidates whose state before is unknown are read too, as
    if the person chose to re-subscribe them, unless the run recorded the choice to leave them.
    """
    run = undoable_run(store, run_id)
    recorded = run.policy.get("unknown_prior")
    candidates, counts = undo_candidates(store, run, unknown_prior=recorded or UNKNOWN_PRIOR_RESUBSCRIBE)
    preview: tuple[tuple[str, str, str, str], ...] = ()
    if client is not None and len(candidates):
        head = candidates.head(preview_max)
        keys = list(zip(head["key_type"].astype(str), head["key_value"].astype(str)))
        profiles = read_profiles(client, keys, step="Reading each profile's current state from CleverTap")
        preview = tuple((key, value, undo_decision(p, method=run.method, tag=run.tag, assumed=assumed)
                         or RESUBSCRIBE_DECISION, BEFORE_UNKNOWN if assumed else BEFORE_SUBSCRIBED)
                        for (key, value), p, assumed in zip(keys, profiles, head["assumed"]))
    return UndoPreview(run_id=run.id, counts=counts, candidates=len(candidates), preview=preview,
                       checked_all=client is not None and len(preview) == len(candidates), choice=recorded,
                       chosen_by=run.policy.get("unknown_prior_chosen_by"))


def start_undo(store: Store, run_id: int, *, user: User, unknown_prior: str | None = None,
               batch_size: int = MAX_UPLOAD_BATCH) -> ExportRun:
    """Record the undo of a run as a run (kind 'undo') and hand it to the worker.

    The candidates are read again from the store: what the dry run showed, unless another undo
    started meanwhile (then this one is refused).

    Args:
        unknown_prior: for a run that recorded no choice for unknown states before, the one made now
            (lib.export.plan.UNKNOWN_PRIOR_CHOICES); kept with the undo run, with who made it.

    Raises:
        NotAllowed: `user` is not an operator.
        ExportError: nothing to undo, or a choice is needed and was not given.
    """
    require(user, OPERATOR, "Undoing an export")
    run = undoable_run(store, run_id)
    recorded = run.policy.get("unknown_prior")
    if unknown_prior is not None and unknown_prior not in UNKNOWN_PRIOR_CHOICES:
        raise ExportError(f"Unknown choice {unknown_prior!r}.")
    choice = recorded or unknown_prior
    candidates, counts = undo_candidates(store, run, unknown_prior=choice)
    if choice is None and counts["prior_unknown"]:
        raise ExportError(f"For {counts['prior_unknown']:,} of this run's unsubscribes the state before is unknown: "
                          "choose whether undo leaves them unsubscribed or re-subscribes them.")
    if candidates.empty:
        raise ExportError("Nothing to undo: no profile was changed from subscribed by this run.")
    connection = connection_of(store, run)
    properties = None if run.method == METHOD_SUBSCRIBE else json.dumps(resubscribe_data(run.tag))
    changes = pd.DataFrame({
        "key_type": candidates["key_type"], "key_value": candidates["key_value"],
        "email": candidates["email"], "unsubscribe": False,
        "prior_msg_email": False,  # the state this undo finds, if the profile is still as the run left it
        "properties_json": properties,
        "prior_source": candidates["assumed"].map({True: ASSUMED, False: None})})
    policy = {"undo_of": run.id, "undo_tag": run.tag, "check_before_write": True,
              "subscribe_status": RESUBSCRIBE_STATUS, "stamp_property": run.policy.get("stamp_property")}
    if counts["prior_unknown"]:
        policy.update(unknown_prior=choice, unknown_prior_chosen_by=run.policy.get("unknown_prior_chosen_by")
                      if recorded else user.email, unknown_prior_chosen_at=run.policy.get(
                          "unknown_prior_chosen_at") if recorded else utc_now())
    undo = store.create_export_run(
        kind="undo", parent_run_id=run.id, list_id=run.list_id, job_id=run.job_id, connection=connection,
        list_name=run.list_name, actions=["resubscribe"], policy=policy,
        method=run.method, actor=user.email, tag=run.tag + "-undo", counts={"undo": counts})
    undo = hand_over(store, undo, [changes], batch_size)
    actions.record(store, user, "undo_started", target=f"run {undo.id}: undo of run {run.id} ({run.list_name})",
                   detail=f"up to {len(changes):,} profiles re-subscribed"
                   + (f"; state before unknown: {choice}" if counts["prior_unknown"] else ""), mode=run.mode)
    return undo
