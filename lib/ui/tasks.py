"""Waiting for a task the worker answers (a count, an undo dry run): one polling fragment per task."""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from lib.progress import activity_line, task_subject
from lib.store import Task
from lib.ui import escape_md, runtime

POLL_S = 1.0


def task_answer(key: str, waiting_text: str, show: Callable[[Task], None]) -> None:
    """Show the answer to the task whose id is in `st.session_state[key]` once the worker has it.

    While it is open, a fragment polls the store every POLL_S and reruns the page when it ends.
    """
    task_id = st.session_state.get(key)
    if task_id is None:
        return
    task = runtime().store.get_task(int(task_id))
    if task is None:
        st.session_state.pop(key, None)
        return
    if task.is_open:
        _wait(task.id, waiting_text)
        return
    if task.state == "failed":
        st.error(escape_md(task.error or "This failed: try again."))
        return
    show(task)


@st.fragment(run_every=POLL_S)
def _wait(task_id: int, waiting_text: str) -> None:
    store = runtime().store
    task = store.get_task(task_id)
    if task is None or not task.is_open:
        st.rerun()
    doing = activity_line(store.activity(task_subject(task_id)))
    st.info(waiting_text + (f"  \n{escape_md(doing)}" if doing else ""), icon=":material/hourglass_top:")
