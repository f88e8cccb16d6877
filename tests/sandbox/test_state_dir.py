"""state_dir: a restarted sandbox (same seed, same directory) continues where it stopped."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest

from lib.sandbox import Sandbox, SandboxConfig, StateDirBusy, StateMismatch
from tests.conftest import ROOT
from tests.sandbox.conftest import Api


def test_changes_lists_and_credits_survive_a_restart(tmp_path):
    config = SandboxConfig(seed=11, profiles=300, state_dir=tmp_path, bulk_seconds=1.0, credits=1000)
    with Sandbox(config) as first:
        api = Api(first)
        records = [r for r in api.all_records() if r.get("identity") and r.get("email")]
        target, other = records[0], records[1]
        api.upload([{"identity": target["identity"], "type": "profile",
                     "profileData": {"MSG-email": False, "Plan": "Gold"}},
                    {"identity": "created-1", "type": "profile", "profileData": {"Name": "Kept"}}])
        api.ct("POST", "/1/subscribe", json={"d": [{"type": "email", "value": other["email"],
                                                     "status": "Unsubscribe"}]})
        api.co("POST", "/email_verify/instant", json={"email": "someone@gmail.com"})
        credits = api.credits()
        list_id = api.bulk("kept.csv", b"Email\nvalid@example.com\nanita.rao@gmail.com\n").json()["data"]["list_id"]
    assert credits < 1000

    with Sandbox(config) as second:
        api = Api(second)
        assert second.port != 0 and second.account_id == first.account_id
        kept = api.ct("GET", "/1/profile.json", params={"identity": target["identity"]}).json()["record"]
        assert kept["profileData"]["MSG-email"] is False and kept["profileData"]["Plan"] == "Gold"
        assert second.profile(identity="created-1")["profileData"]["Name"] == "Kept"
        assert second.profile(identity=other["identity"])["profileData"]["MSG-email"] is False
        assert api.credits() == credits
        assert api.progress(list_id)["data"]["progress_status"] == "running"  # still going after the restart
        done = api.wait_completed(list_id)
        assert done["data"]["progress_status"] == "completed"
        url = api.co("POST", "/download/result", json={"list_id": list_id}).json()["data"]["url"]
        assert api.session.get(url, timeout=5).text.count("\n") == 3
        assert api.credits() < credits  # the list was charged when it completed


def test_a_state_dir_belongs_to_one_dataset(tmp_path):
    with Sandbox(SandboxConfig(seed=1, profiles=10, state_dir=tmp_path)):
        pass
    with pytest.raises(RuntimeError, match="another dataset"):
        Sandbox(SandboxConfig(seed=2, profiles=10, state_dir=tmp_path)).start()


def test_without_state_dir_nothing_survives(make_sandbox):
    first = make_sandbox(profiles=20)
    Api(first).upload([{"identity": "temp", "type": "profile", "profileData": {"Name": "T"}}])
    first.stop()
    assert make_sandbox(profiles=20).profile(identity="temp") is None


def test_one_sandbox_per_state_dir(tmp_path):
    config = SandboxConfig(seed=1, profiles=10, state_dir=tmp_path)
    first = Sandbox(config).start()
    second = Sandbox(config)
    try:
        with pytest.raises(StateDirBusy, match=re.escape(f"state_dir {tmp_path} is in use by another sandbox")):
            second.start()
        assert second.port == 0
        assert Api(first).credits() == config.credits  # the first one is unaffected
    finally:
        first.stop()
    second.start()  # stop() released the lock
    try:
        assert Api(second).credits() == config.credits
    finally:
        second.stop()


def test_a_failed_start_releases_the_lock(tmp_path):
    with Sandbox(SandboxConfig(seed=1, profiles=10, state_dir=tmp_path)):
        pass
    with pytest.raises(StateMismatch):
        Sandbox(SandboxConfig(seed=2, profiles=10, state_dir=tmp_path)).start()
    with Sandbox(SandboxConfig(seed=1, profiles=10, state_dir=tmp_path)) as again:
        assert again.port != 0


def test_the_lock_spans_processes_and_dies_with_its_process(tmp_path):
    command = [sys.executable, "-m", "lib.sandbox", "--port", "0", "--profiles", "10", "--seed", "1",
               "--state-dir", str(tmp_path)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(process.stdout.readline())["clearout_base"]
        with pytest.raises(StateDirBusy, match=f"process {process.pid}"):
            Sandbox(SandboxConfig(seed=1, profiles=10, state_dir=tmp_path)).start()
        refused = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True,
                                 timeout=60)
        assert refused.returncode == 2 and refused.stdout == ""
        assert f"state_dir {tmp_path} is in use by another sandbox (process {process.pid})" in refused.stderr
    finally:
        process.send_signal(signal.SIGKILL)  # no stop(): the kernel drops the lock with the process
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()
    with Sandbox(SandboxConfig(seed=1, profiles=10, state_dir=tmp_path)) as after:
        assert after.port != 0
