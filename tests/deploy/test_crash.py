"""Crash safety: an install killed (SIGKILL) at any moment leaves a complete, loadable active slot.

Two ways in: a table of kill points (the child kills itself right at a named step, so every
step of install + switch is covered deterministically), and a child that installs and
switches in a loop until it is killed after a random delay.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from edgeops.deploy import ModelStore
from edgeops.errors import UsageError
from tests.conftest import ROOT, needs_ort, needs_tflite
from tests.deploy.conftest import run_sample

pytestmark = [needs_ort, needs_tflite]

# The child: KILL_AT is "module|ModelStore:function:before|after[:text[:n]]", the step to die at: the n-th call
# (default 1st) of module.function whose arguments, joined with "|", contain text; or "loop".
CHILD = textwrap.dedent("""
    import itertools, os, signal, sys
    import edgeops.bundle, edgeops.deploy.store as store_mod
    from edgeops.deploy import ModelStore

    def die_at(module, name, when, text="", nth="1"):
        orig, calls = getattr(module, name), itertools.count(1)
        def wrapped(*args, **kwargs):
            hit = text in "|".join(map(str, args)) and next(calls) == int(nth)
            if hit and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            result = orig(*args, **kwargs)
            if hit:
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        setattr(module, name, wrapped)

    root, kill_at, bundles = sys.argv[1], sys.argv[2], sys.argv[3:]
    store = ModelStore(root)
    if kill_at != "loop":
        where, name, *how = kill_at.split(":")
        die_at({"bundle": edgeops.bundle, "store": store_mod, "os": os, "ModelStore": ModelStore}[where], name, *how)
    print("go", flush=True)
    for bundle in itertools.cycle(bundles):
        store.switch(store.install(bundle).slot)
        if kill_at != "loop":
            break
""")


def child(root, kill_at, *bundles) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(root), kill_at, *map(str, bundles)],
                            stdout=subprocess.PIPE, text=True, env=env)


def assert_store_is_sound(root, versions) -> str:
    """active.json parses, the active slot is complete and runs, previous is complete or absent."""
    pointer = json.loads((root / "active.json").read_text())
    assert pointer["active"] in ("a", "b")
    store = ModelStore(root)
    active = store.active(verify=True)
    assert active is not None and active.version in versions
    prev = store.previous(verify=True)
    assert prev is None or prev.slot != active.slot
    run_sample(store.load_active(threads=1))
    return active.version


@pytest.fixture
def store_at_v2(tmp_path, bundles):
    """A store with v1 in slot a (previous) and v2 in slot b (active): the next install overwrites a."""
    store = ModelStore(tmp_path / "store")
    for b in (bundles.v1, bundles.v2):
        store.switch(store.install(b).slot)
    return tmp_path / "store"


def assert_rollback_lands_on(root, tmp_path, previous) -> None:
    """What `edgeops store rollback` would do now (on a copy): return to ``previous``, a slot that was active
    before (v1 in a, v2 in b), or refuse when there is none. Never a slot that was never active."""
    copy = tmp_path / "rollback-copy"
    shutil.copytree(root, copy)
    store = ModelStore(copy)
    if previous is None:
        with pytest.raises(UsageError, match="nothing to roll back to"):
            store.rollback()
        return
    back = store.rollback()
    assert (back.slot, back.version) == (previous, {"a": "1.0.0", "b": "2.0.0"}[previous])


# kill point -> the active version after the kill, and the pointer's (active, previous). The install of v3
# overwrites slot a, which held v1 (previous): ``previous`` must be dropped before slot a is touched.
@pytest.mark.parametrize("kill_at, expected, pointer", [
    pytest.param("bundle:extract:before", "2.0.0", ("b", "a"), id="before-extract"),
    pytest.param("bundle:extract:after", "2.0.0", ("b", "a"), id="after-extract-into-tmp"),
    pytest.param("store:_write_slot_meta:after", "2.0.0", ("b", "a"), id="after-slot-json"),
    pytest.param("ModelStore:_forget_previous:after", "2.0.0", ("b", None), id="after-previous-dropped"),
    pytest.param("os:rename:after:slots/a|", "2.0.0", ("b", None), id="old-slot-renamed-aside-not-deleted"),
    pytest.param("store:_remove_tree:after", "2.0.0", ("b", None), id="after-old-slot-wiped"),
    pytest.param("os:rename:after:slots/a.tmp|", "2.0.0", ("b", None), id="after-tmp-renamed-into-slot"),
    pytest.param("ModelStore:_write_pointer:before:a|b", "2.0.0", ("b", None), id="installed-not-switched"),
    pytest.param("os:replace:before:active.json:2", "2.0.0", ("b", None), id="pointer-temp-written-not-renamed"),
    pytest.param("ModelStore:_write_pointer:after:a|b", "3.0.0", ("a", "b"), id="switched"),
])
def test_kill_at_each_step_leaves_a_complete_active_slot(store_at_v2, bundles, tmp_path, kill_at, expected, pointer):
    """Also the pointer at each kill point: ``previous`` never names a slot being rewritten (regression guard:
    dropping ``previous`` after the rename instead of before left it on v3, which rollback then activated)."""
    proc = child(store_at_v2, kill_at, bundles.v3)
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, f"the child was meant to die at {kill_at}"
    assert assert_store_is_sound(store_at_v2, {"2.0.0", "3.0.0"}) == expected
    raw = json.loads((store_at_v2 / "active.json").read_text())
    assert (raw["active"], raw["previous"]) == pointer
    store = ModelStore(store_at_v2)
    assert store.active().slot == pointer[0]
    assert (None if store.previous() is None else store.previous().slot) == pointer[1]
    assert_rollback_lands_on(store_at_v2, tmp_path, pointer[1])
    store.switch(store.install(bundles.v3).slot)  # the next install cleans up and succeeds
    assert store.active().version == "3.0.0" and store.previous().version == expected
    assert sorted(os.listdir(store_at_v2 / "slots")) == ["a", "b"]


@pytest.mark.slow
def test_sigkill_at_random_moments_never_breaks_the_store(store_at_v2, bundles):
    rng = random.Random(20240611)
    delays = [0.0, 0.001, 0.005] + [rng.uniform(0.0, 0.25) for _ in range(9)]
    seen = set()
    for delay in delays:
        proc = child(store_at_v2, "loop", bundles.v3, bundles.v1, bundles.v2)
        assert proc.stdout.readline().strip() == "go"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
        proc.stdout.close()
        seen.add(assert_store_is_sound(store_at_v2, {"1.0.0", "2.0.0", "3.0.0"}))
    assert seen, "every kill left an active version"
