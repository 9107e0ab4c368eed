"""The static memory plan of a generated model: one arena, every intermediate tensor at a fixed offset.

Each tensor lives from the step of the operator that writes it to the last step that reads it (an alias
made by RESHAPE extends its source's life). Tensors are placed largest first (ties: the one written
first) at the lowest offset where no tensor alive at an overlapping step lies (first fit). Offsets are
not rounded: the kernels read and write int8, so the arena is exactly the highest end of the plan.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Buffer:
    key: int  # the tensor index that owns the storage
    size: int  # bytes
    first: int  # first step alive
    last: int  # last step alive


def first_fit(buffers: list[Buffer]) -> tuple[dict[int, int], int]:
    """Offsets by ``key`` and the arena size."""
    placed: list[tuple[int, Buffer]] = []
    offsets: dict[int, int] = {}
    for b in sorted(buffers, key=lambda b: (-b.size, b.first, b.key)):
        offset = 0
        live = [(o, p) for o, p in placed if not (p.last < b.first or b.last < p.first)]
        for o, other in sorted(live, key=lambda x: (x[0], x[1].key)):
            if o - offset >= b.size:
                break
            offset = max(offset, o + other.size)
        placed.append((offset, b))
        offsets[b.key] = offset
    return offsets, max((o + b.size for o, b in placed), default=0)


def check(buffers: list[Buffer], offsets: dict[int, int], arena: int) -> None:
    """No two buffers alive at the same step overlap, and all fit (a self-check of the planner)."""
    for i, a in enumerate(buffers):
        oa = offsets[a.key]
        assert 0 <= oa and oa + a.size <= arena, (a, oa, arena)
        for b in buffers[i + 1:]:
            if a.last < b.first or b.last < a.first:
                continue
            ob = offsets[b.key]
            assert oa + a.size <= ob or ob + b.size <= oa, (a, b, oa, ob)
