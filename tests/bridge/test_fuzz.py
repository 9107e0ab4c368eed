"""Fuzzing the C frame decoder and message parser (under the sanitizers) with mutated golden frames.

Some thousands of seeded cases (bit flips, truncations, splices, garbage, re-framed payload mutations)
through ``firmware_bridge/tests/fuzz_stdin.c`` built with ``-fsanitize=address,undefined``; each batch's
frame, decode and drop counts must equal the Python codec's for the same bytes. benchmarks/bridge_fuzz.py
runs many more.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools import bridgefuzz  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None,
                                reason="gcc or make not installed: the C harness cannot be built")


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Path:
    try:
        return bridgefuzz.build(tmp_path_factory.mktemp("fuzz-build"))
    except RuntimeError as exc:
        if "sanitize" in str(exc) and ("cannot find" in str(exc) or "not supported" in str(exc)):
            pytest.skip(f"this gcc has no address/undefined sanitizer runtime: {exc}")
        raise


def test_golden_frames_and_stream_pass_the_harness(harness):
    totals = bridgefuzz.run(harness, bridgefuzz.golden_frames(), batch=100)
    assert totals.frames == totals.decoded == len(bridgefuzz.golden_frames())
    stream = (bridgefuzz.GOLDEN / "stream.bin").read_bytes()
    totals = bridgefuzz.run(harness, [stream])
    assert (totals.frames, totals.dropped) == (2, 3)


def test_thousands_of_mutated_frames_are_survived_and_agree_with_python(harness):
    totals = bridgefuzz.run(harness, bridgefuzz.cases(10000, seed=17), batch=500)
    assert totals.cases == 10000
    # the mutations reach every layer: dropped frames, good frames with bad bodies, messages that decode
    assert totals.dropped > 2000
    assert totals.frames - totals.decoded > 1000
    assert totals.decoded > 1000


def test_a_crashing_input_is_reported_alone(harness, tmp_path):
    # a harness that dies on any input stands in for a crash: the failure names one case, not the batch
    fake = tmp_path / "crash.sh"
    fake.write_text("#!/bin/sh\ncat >/dev/null\necho 'ERROR: AddressSanitizer: fake' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(bridgefuzz.FuzzFailure, match="case .*harness exit 1") as info:
        bridgefuzz.run(fake, [b"\x01\x02", b"\x03"], batch=10)
    assert info.value.case == b"\x01\x02"


def test_a_disagreement_with_python_is_a_failure(harness, tmp_path):
    fake = tmp_path / "liar.sh"
    fake.write_text("#!/bin/sh\nn=$(wc -c)\necho \"bytes=$n frames=9 decoded=9 dropped=0\"\n")
    fake.chmod(0o755)
    with pytest.raises(bridgefuzz.FuzzFailure, match="C and Python disagree"):
        bridgefuzz.run(fake, bridgefuzz.golden_frames()[:1])
