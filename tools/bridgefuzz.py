"""Fuzz the firmware_bridge C library's frame decoder and message parser with mutated golden frames.

Used by tests/bridge/test_fuzz.py (some thousands of cases) and benchmarks/bridge_fuzz.py (many more);
not part of the installed package. :func:`build` compiles ``firmware_bridge/tests/fuzz_stdin.c`` with
``-fsanitize=address,undefined`` (``make -C firmware_bridge fuzz``); :func:`cases` makes seeded mutations
of the golden frames; :func:`run` sends them to the harness in batches (a 0x00 between cases, so each
starts on a fresh frame; the device state carries over, which is more to explore) and, per batch, checks
the harness against the Python codec of the same bytes: the same good frames, the same drops, the same
messages that decode. A sanitizer report, a broken property in the harness or a disagreement raises
:class:`FuzzFailure` naming the smallest failing case (each case of a failed batch is rerun alone).

Mutations: bit flips and byte changes on the line bytes (most then fail the CRC), truncations, splices
of two frames, random garbage, and payload mutations re-framed with a correct CRC (bit flips, cut or
extended bodies, random type codes, lengths set to the extremes) so the message parser sees them.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeops.bridge import wire

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware_bridge"
GOLDEN = FIRMWARE / "tests" / "golden"
C_MAX_RANGES = 16  # EOB_STATUS_MAX_RANGES: a C decoder refuses a MODEL_STATUS with more
_COUNTS = re.compile(r"bytes=(\d+) frames=(\d+) decoded=(\d+) dropped=(\d+)")


class FuzzFailure(AssertionError):
    """The harness crashed, a sanitizer fired, or C and Python disagree; ``case`` is the input."""

    def __init__(self, message: str, case: bytes):
        super().__init__(message)
        self.case = case


@dataclass
class Totals:
    cases: int = 0
    batches: int = 0
    bytes: int = 0
    frames: int = 0
    decoded: int = 0
    dropped: int = 0


def build(build_dir: str | os.PathLike[str]) -> Path:
    """The sanitizer-built stdin harness in ``build_dir`` (``make fuzz``); RuntimeError when it fails."""
    make = shutil.which("make")
    if make is None:
        raise RuntimeError("make not found")
    proc = subprocess.run([make, "-s", "-C", str(FIRMWARE), "fuzz", f"BUILD={Path(build_dir).resolve()}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building the fuzz harness failed:\n{proc.stdout}{proc.stderr}")
    return Path(build_dir).resolve() / "asan" / "fuzz_stdin"


def golden_frames() -> list[bytes]:
    """Every single-frame golden file (stream.bin left out)."""
    return [p.read_bytes() for p in sorted(GOLDEN.glob("*.bin")) if p.name != "stream.bin"]


def _reframe(payload: bytes) -> bytes:
    return wire.cobs_encode(payload + wire.crc32(payload).to_bytes(4, "little")) + b"\x00"


def mutate(rng: random.Random, frames: Sequence[bytes]) -> bytes:
    """One fuzz case from the golden ``frames``."""
    frame = rng.choice(frames)
    kind = rng.randrange(8)
    if kind == 0:  # bit flips on the line
        data = bytearray(frame)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == 1:  # truncated, with or without a delimiter
        cut = rng.randrange(1, len(frame))
        return frame[:cut] + (b"\x00" if rng.random() < 0.5 else b"")
    if kind == 2:  # two frames spliced
        other = rng.choice(frames)
        return frame[:rng.randrange(len(frame))] + other[rng.randrange(len(other)):]
    if kind == 3:  # garbage, some of it with zeros
        return bytes(rng.randrange(256) if rng.random() < 0.8 else 0 for _ in range(rng.randrange(1, 300)))
    payload = bytearray(wire.decode_frame(frame).payload)
    if kind == 4:  # payload bit flips, then a correct CRC
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(payload))
            payload[i] ^= 1 << rng.randrange(8)
    elif kind == 5:  # body cut or extended
        if rng.random() < 0.5 and len(payload) > wire.HEADER_SIZE:
            del payload[rng.randrange(wire.HEADER_SIZE, len(payload)):]
        else:
            payload += bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
    elif kind == 6:  # another type code, or version
        if rng.random() < 0.8:
            payload[1] = rng.choice([*wire.MESSAGES, rng.randrange(256)])
        else:
            payload[0] = rng.randrange(256)
    else:  # a length or count byte at an extreme
        if len(payload) > wire.HEADER_SIZE:
            i = rng.randrange(wire.HEADER_SIZE, len(payload))
            payload[i] = rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF])
    return _reframe(bytes(payload[:wire.MAX_PAYLOAD_DEFAULT + 40]))


def cases(count: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    frames = golden_frames()
    for _ in range(count):
        yield mutate(rng, frames)


def python_view(data: bytes) -> tuple[int, int, int]:
    """(good frames, frames whose message decodes, dropped) as the Python codec sees ``data``, counted the
    way the C library decodes: strings are bytes to C (no UTF-8 check), and a MODEL_STATUS lists at most
    EOB_STATUS_MAX_RANGES ranges."""
    dec = wire.FrameDecoder()
    frames = dec.feed(data)
    decoded = 0
    for f in frames:
        try:
            msg = wire.decode_message(f, text_errors="surrogateescape")
        except wire.WireError:
            continue
        if isinstance(msg, wire.ModelStatus) and len(msg.missing) > C_MAX_RANGES:
            continue
        decoded += 1
    return len(frames), decoded, dec.dropped


def _run_harness(harness: Path, data: bytes, timeout: float) -> tuple[int, str, str]:
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
    proc = subprocess.run([str(harness)], input=data, capture_output=True, timeout=timeout, env=env)
    return proc.returncode, proc.stdout.decode("latin-1"), proc.stderr.decode("latin-1")


def _check(harness: Path, data: bytes, timeout: float) -> tuple[str | None, tuple[int, int, int, int]]:
    rc, out, err = _run_harness(harness, data, timeout)
    m = _COUNTS.search(out)
    if rc != 0 or m is None:
        return f"harness exit {rc}:\n{err[-3000:]}", (0, 0, 0, 0)
    n, frames, decoded, dropped = (int(g) for g in m.groups())
    if n != len(data):
        return f"harness read {n} of {len(data)} bytes", (0, 0, 0, 0)
    py = python_view(data)
    if (frames, decoded, dropped) != py:
        return (f"C and Python disagree: C frames/decoded/dropped {frames}/{decoded}/{dropped}, "
                f"Python {py[0]}/{py[1]}/{py[2]}"), (0, 0, 0, 0)
    return None, (n, frames, decoded, dropped)


def run(harness: Path, all_cases: Sequence[bytes] | Iterator[bytes], *, batch: int = 200,
        timeout: float = 60.0) -> Totals:
    """Every case through the harness, ``batch`` at a time; :class:`FuzzFailure` on the first problem."""
    totals = Totals()
    pending: list[bytes] = []

    def flush() -> None:
        if not pending:
            return
        data = b"".join(b"\x00" + c for c in pending)
        problem, (n, frames, decoded, dropped) = _check(harness, data, timeout)
        if problem is not None:
            for case in pending:  # the smallest failing input: one case alone
                alone, _ = _check(harness, b"\x00" + case, timeout)
                if alone is not None:
                    raise FuzzFailure(f"case {case.hex()}: {alone}", case)
            raise FuzzFailure(f"a batch of {len(pending)} cases (each passes alone): {problem}", data)
        totals.batches += 1
        totals.cases += len(pending)
        totals.bytes += n
        totals.frames += frames
        totals.decoded += decoded
        totals.dropped += dropped
        pending.clear()

    for case in all_cases:
        pending.append(case)
        if len(pending) >= batch:
            flush()
    flush()
    return totals
