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

The demo firmware (``--demo``): the firmware ``make -C firmware_bridge emulate`` runs on QEMU's mps2-an386
(app/eob_demo.c, the digits model compiled in blob mode, its built-in samples, the eo_* kernels, the library and
the board port), each source compiled to its own object with the same flags and linked with the same linker
script (ports/mps2-an386/demo.ld, ``--gc-sections``, newlib-nano); what each part keeps in the image is read
from the linker map (the input sections that survived ``--gc-sections``). Flash = text + rodata + data (its
initial values), RAM = data + bss, the 64 kB stack apart. The flash model for the model slots
(board_hal.h: 2 kB format record + 4 kB table + 2 x 32 kB slots) is not in the image.

    python benchmarks/bridge_footprint.py [--max-payload 1024] [--demo] [--json]
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


DEMO_GROUPS = {  # object name -> part
    **{src.replace(".c", ""): "library (src/eob_*.c)" for src in SOURCES},
    "eob_demo": "demo app (app/eob_demo.c)",
    "digits_model": "digits model (code + constants)",
    "digits_samples": "built-in samples (20 digits)",
    "startup": "board port (mps2-an386)", "board": "board port (mps2-an386)",
    "board_hal": "board port (mps2-an386)", "demo_main": "board port (mps2-an386)",
}


ALLOC_SECTIONS = (".vectors", ".text", ".rodata", ".data", ".bss", "COMMON", ".ARM.exidx", ".ARM.extab", ".init",
                  ".fini", ".glue", ".vfp11", ".v4_bx", ".iplt", ".rel.iplt")


def demo_sources() -> list[Path]:
    port = FIRMWARE / "ports" / "mps2-an386"
    return ([port / f for f in ("startup.c", "board.c", "board_hal.c", "demo_main.c")]
            + [FIRMWARE / "app" / "eob_demo.c", FIRMWARE / "app" / "model" / "digits_model.c",
               FIRMWARE / "app" / "model" / "digits_samples.c"]
            + sorted((FIRMWARE / "src").glob("eo_*.c")) + [FIRMWARE / "src" / src for src in SOURCES])


def map_sections(map_text: str) -> list[tuple[str, int, str]]:
    """(input section, size, object file) for every input section the link kept, from a GNU ld map."""
    body = map_text.split("Linker script and memory map", 1)[1]
    out = []
    pending = None
    for line in body.splitlines():
        m = re.match(r"^ (\.\S+|COMMON)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)$", line)
        if m:
            out.append((m[1], int(m[3], 16), m[4]))
            pending = None
            continue
        m = re.match(r"^ (\.\S+)$", line)
        if m:
            pending = m[1]
            continue
        m = re.match(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)$", line)
        if m and pending:
            out.append((pending, int(m[2], 16), m[3]))
        pending = None
    return out


def measure_demo(work: Path) -> dict:
    tools = cortexm.toolchain()
    port = FIRMWARE / "ports" / "mps2-an386"
    incs = [f"-I{d}" for d in (FIRMWARE / "include", FIRMWARE / "app", FIRMWARE / "app" / "model", port)]
    flags = [*cortexm.c_flags("soft"), *incs]
    objects = []
    for src in demo_sources():
        obj = work / f"{src.stem}.o"
        subprocess.run([tools.gcc, *flags, "-c", str(src), "-o", str(obj)], check=True, capture_output=True, text=True)
        objects.append(str(obj))
    elf, mapfile = work / "eob_demo.elf", work / "eob_demo.map"
    subprocess.run([tools.gcc, *cortexm.c_flags("soft"), *cortexm.LDFLAGS, f"-L{port}", "-T", "demo.ld",
                    f"-Wl,-Map={mapfile}", *objects, "-o", str(elf)], check=True, capture_output=True, text=True)
    parts: dict[str, dict[str, int]] = {}
    for section, size, obj in map_sections(mapfile.read_text()):
        if size == 0 or not section.startswith(ALLOC_SECTIONS):
            continue  # the stack, and what is not in the image (.comment, .ARM.attributes, debug)
        stem = Path(obj).stem
        part = ("demo app state (static eob_demo)" if section == ".bss.demo" else DEMO_GROUPS.get(stem)) or ("kernels (src/eo_*.c)" if stem.startswith("eo_") else
                                         "libc/libgcc (newlib-nano)" if ".a(" in obj else "other")
        row = parts.setdefault(part, {"flash": 0, "ram": 0})
        if section.startswith((".bss", "COMMON")):
            row["ram"] += size
        elif section.startswith(".data"):
            row["flash"] += size
            row["ram"] += size
        else:
            row["flash"] += size
    text, data, bss = cortexm.size_of(elf)
    stack = int(re.search(r"^\.stack\s+0x[0-9a-f]+\s+0x([0-9a-f]+)", mapfile.read_text(), re.M)[1], 16)
    return {"parts": parts, "elf": {"text": text, "data": data, "bss": bss}, "stack_reserved": stack,
            "flash_total": text + data, "ram_total": data + bss - stack}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-payload", type=int, default=1024)
    ap.add_argument("--demo", action="store_true", help="also the demo firmware for mps2-an386, part by part")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = measure(args.max_payload, Path(tmp))
        if args.demo:
            if args.max_payload != 1024:
                ap.error("--demo measures the firmware as built (EOB_MAX_PAYLOAD 1024)")
            with tempfile.TemporaryDirectory() as tmp:
                result["demo"] = measure_demo(Path(tmp))
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
    if "demo" in result:
        demo = result["demo"]
        print("\ndemo firmware on mps2-an386 (make -C firmware_bridge emulate), kept after --gc-sections:")
        print(f"  {'part':34} {'flash':>7} {'RAM':>7}")
        for name, row in sorted(demo["parts"].items(), key=lambda kv: -kv[1]["flash"]):
            print(f"  {name:34} {row['flash']:7} {row['ram']:7}")
        fill = demo["flash_total"] - sum(row["flash"] for row in demo["parts"].values())
        print(f"  {'alignment and fill':34} {fill:7}")
        elf = demo["elf"]
        print(f"  {'whole image':34} {demo['flash_total']:7} {demo['ram_total']:7}   (arm-none-eabi-size: text "
              f"{elf['text']}, data {elf['data']}, bss {elf['bss']} incl. the {demo['stack_reserved']}-byte stack)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
