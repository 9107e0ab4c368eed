"""The static memory plan: no two tensors alive at the same step share a byte, memory is reused along
a chain, and the arena is at least the busiest step's bytes and at most every tensor at once."""

from __future__ import annotations

import numpy as np
import pytest

from edgeops.convert.codegen.plan import Buffer, check, first_fit


def random_buffers(seed: int, n: int = 40, steps: int = 30) -> list[Buffer]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        first = int(rng.integers(0, steps))
        out.append(Buffer(k, int(rng.integers(1, 500)), first, first + int(rng.integers(0, 6))))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_live_tensors_never_overlap_and_the_arena_is_bounded(seed):
    buffers = random_buffers(seed)
    offsets, arena = first_fit(buffers)
    check(buffers, offsets, arena)  # raises on an overlap or a tensor past the end
    busiest = max(sum(b.size for b in buffers if b.first <= s <= b.last) for s in range(40))
    assert busiest <= arena <= sum(b.size for b in buffers)


def test_a_chain_needs_only_two_buffers():
    chain = [Buffer(k, 100 - k, k, k + 1) for k in range(10)]  # each tensor read by the next op only
    offsets, arena = first_fit(chain)
    assert arena == 100 + 99


def test_check_catches_an_overlap():
    a, b = Buffer(0, 10, 0, 2), Buffer(1, 10, 1, 3)
    with pytest.raises(AssertionError):
        check([a, b], {0: 0, 1: 5}, 20)


def test_no_tensors_no_arena():
    assert first_fit([]) == ({}, 0)


def test_codegen_doc_lists_every_supported_op():
    from harness import KERNELS

    from edgeops.convert.codegen import supported_ops

    doc = (KERNELS / "CODEGEN.md").read_text()
    missing = [op for op in supported_ops() if op not in doc]
    assert not missing, f"firmware_bridge/CODEGEN.md does not list {missing}"
