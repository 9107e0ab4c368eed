"""Flash, RAM and stack of the firmware_bridge link library (src/eob_*.c) on a Cortex-M4.

Flash: ``arm-none-eabi-size`` (Berkeley text + data) of each library object, compiled with the flags every
Cortex-M4 build in this repository uses (tools/cortexm.py ``c_flags()``: ``-Os -mcpu=cortex-m4 -mthumb
-mfloat-abi=soft -std=c99 -Wall -Wextra -Werror -pedantic -ffunction-sections -fdata-sections``). With
``--gc-sections`` a firmware keeps only what it calls; the total is everything. The library has no
.data or .bss of its own (no globals).

RAM: the library owns none; the caller's objects are sized by ``sizeof`` as arm-none-eabi-gcc lays them
out (``eob_link_buffers`` is EOB_RX_BUFFER_SIZE + EOB_MAX_PAYLOAD + EOB_TX_BUFFER_SIZE bytes, so it
follows ``-DEOB_MAX_PAYLOAD``).

Stack: the deepest call chain from each entry point, summed from GCC's own per-function frame sizes
(``-fcallgraph-info=su``); calls through the HAL's function pointers count as 0 (add your HAL's own),
library calls outside the library (memcpy, memset, ...) too.

    python benchmarks/bridge_footprint.py [--max-payload 1024] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import cortexm  # noqa: E402

FIRMWARE = ROOT / "firmware_bridge"
SOURCES = ["eob_frame.c", "eob_msg.c", "eob_sha256.c", "eob_slots.c", "eob_link.c"]
ENTRY_POINTS = ["eob_link_poll", "eob_link_handle_ping", "eob_link_handle_model", "eob_link_emit",
                "eob_slots_boot", "eob_slots_confirm", "eob_slots_revert", "eob_msg_decode", "eob_msg_to_line"]
STRUCTS = ["eob_link_buffers", "eob_link", "eob_slots", "eob_msg", "eob_decoder", "eob_sha256"]


def call_graph(ci_files: list[Path]) -> tuple[dict[str, int], dict[str, set[str]]]:
    """Frame bytes per function and its callees, from GCC's .ci (VCG) files; names without file or .isra."""
    frames: dict[str, int] = {}
    calls: dict[str, set[str]] = {}

    def name(title: str) -> str:
        return title.rsplit(":", 1)[-1].split(".")[0]

    for ci in ci_files:
        text = ci.read_text()
        for title, label in re.findall(r'node: \{ title: "([^"]+)" label: "([^"]*)"', text):
            m = re.search(r"\\n(\d+) bytes", label)
            if m:
                frames[name(title)] = max(frames.get(name(title), 0), int(m.group(1)))
        for src, dst in re.findall(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', text):
            calls.setdefault(name(src), set()).add(name(dst))
    return frames, calls


def deepest(fn: str, frames: dict[str, int], calls: dict[str, set[str]], seen: tuple[str, ...] = ()) -> int:
    if fn in seen:
        raise ValueError(f"recursion through {fn}")
    return frames.get(fn, 0) + max((deepest(c, frames, calls, (*seen, fn)) for c in calls.get(fn, ())), default=0)


def measure(max_payload: int, work: Path) -> dict:
    tools = cortexm.toolchain()
    flags = [*cortexm.c_flags("soft"), f"-DEOB_MAX_PAYLOAD={max_payload}", f"-I{FIRMWARE / 'include'}"]
    objects = {}
    for src in SOURCES:
        obj = work / src.replace(".c", ".o")
        subprocess.run([tools.gcc, *flags, "-fcallgraph-info=su", "-c", str(FIRMWARE / "src" / src), "-o", str(obj)],
                       check=True, cwd=work, capture_output=True, text=True)
        objects[src] = cortexm.size_of(obj)
    probe = work / "sizes.c"
    probe.write_text('#include "eob_link.h"\n#include "eob_sha256.h"\n'
                     + "".join(f"char size_{s}[sizeof({s})];\n" for s in STRUCTS))
    subprocess.run([tools.gcc, *flags, "-c", str(probe), "-o", str(work / "sizes.o")], check=True)
    nm = subprocess.run([tools.gcc.replace("gcc", "nm"), "-S", "-t", "d", str(work / "sizes.o")], check=True,
                        capture_output=True, text=True).stdout
    structs = {m[1]: int(m[0]) for m in re.findall(r"^\d+ (\d+) [BC] size_(\w+)$", nm, re.M)}
    frames, calls = call_graph(sorted(work.glob("*.ci")))
    stacks = {fn: deepest(fn, frames, calls) for fn in ENTRY_POINTS}
    return {"compiler": subprocess.run([tools.gcc, "--version"], capture_output=True, text=True).stdout.splitlines()[0],
            "flags": " ".join(cortexm.c_flags("soft")), "max_payload": max_payload,
            "objects": {k: {"text": t, "data": d, "bss": b} for k, (t, d, b) in objects.items()},
            "flash_total": sum(t + d for t, d, _ in objects.values()), "structs": structs, "stack": stacks}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-payload", type=int, default=1024)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = measure(args.max_payload, Path(tmp))
    except cortexm.Unavailable as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['compiler']}\n{result['flags']}  (EOB_MAX_PAYLOAD={args.max_payload})\n")
    print(f"{'object':16} {'text':>6} {'data':>5} {'bss':>5}")
    for name, row in result["objects"].items():
        print(f"{name:16} {row['text']:6} {row['data']:5} {row['bss']:5}")
    print(f"{'total flash':16} {result['flash_total']:6}\n")
    print("RAM the caller owns (sizeof):")
    for name, size in result["structs"].items():
        print(f"  {name:18} {size:6} bytes")
    print("\nworst-case stack from each entry point (HAL calls excluded):")
    for name, size in result["stack"].items():
        print(f"  {name:24} {size:5} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
