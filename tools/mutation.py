"""Mutation testing, the slow tier: do the tests notice when the code is wrong?

mutmut 3 (``pip install mutmut``) changes one thing at a time in a module (``<`` into
``<=``, ``+ 1`` into ``+ 2``, a constant, a dropped argument...) and runs that module's
fast tests against each change. A change no test notices ("survived") is a bug the suite
would let through, or a change that means nothing (an equivalent mutant).

Each module in :data:`MODULES` runs on its own, with only the test files listed for it,
in a scratch copy of the tree under ``build/mutation/<name>/`` (mutmut's own copy,
``mutants/``, lands inside it), so a run neither reads half-saved files of people at work
nor leaves anything in the repository. The copy is removed afterwards unless ``--keep``.

    python tools/mutation.py                      # every module, 2 workers
    python tools/mutation.py drift stats gates    # some, by short name
    python tools/mutation.py --list               # the table
    python tools/mutation.py drift --keep --show  # keep the copy and print each survivor's diff
    python tools/mutation.py --fail-under 90      # exit 1 when a module scores below 90 %

A target may name ``functions``: only their mutants run and count (the ota machine and its
chunks on disk, whose other functions each run whole updates). Printed per module: killed,
timeout, survived, no tests, equivalent (listed in :data:`EQUIVALENT` with the reason), and the
score ``(killed + timeout) / (total - equivalent)``. Not part of ``pytest``: the nightly job runs
it. tests/test_mutation_table.py checks that the table names files that exist.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / "build" / "mutation"
COPY = ("edgeops", "tests", "examples", "pyproject.toml", "setup.cfg")


@dataclass(frozen=True)
class Target:
    """One module to mutate and the fast test files that are meant to catch its bugs."""

    module: str
    tests: tuple[str, ...]
    note: str = ""
    functions: tuple[str, ...] = ()  # mutate only these (mutmut names, globs allowed); empty: the whole module


MODULES: dict[str, Target] = {
    "gates": Target("edgeops/validate/gates.py", ("tests/validate/test_gates.py",)),
    "gate-rule": Target("edgeops/_gates.py", ("tests/test_gates.py",)),
    "metrics": Target("edgeops/validate/metrics.py",
                      ("tests/validate/test_accuracy.py", "tests/validate/test_parity.py")),
    "drift": Target("edgeops/monitor/drift.py", ("tests/monitor/test_drift.py", "tests/monitor/test_drift_window.py")),
    "stats": Target("edgeops/runtime/stats.py", ("tests/runtime/test_stats.py",)),
    "guardrails": Target("edgeops/runtime/guardrails.py",
                         ("tests/runtime/test_guardrails.py", "tests/runtime/test_guardrails_ranges.py")),
    "tar": Target("edgeops/bundle/_tar.py", ("tests/bundle/test_tar_headers.py", "tests/bundle/test_tar_structure.py",
                                             "tests/bundle/test_hostile.py", "tests/bundle/test_bundle.py")),
    "reader": Target("edgeops/bundle/reader.py",
                     ("tests/bundle/test_bundle.py", "tests/bundle/test_hostile.py", "tests/bundle/test_signing.py",
                      "tests/bundle/test_extract.py")),
    "outbox": Target("edgeops/agent/outbox.py", ("tests/agent/test_outbox.py", "tests/agent/test_outbox_bounds.py")),
    "store": Target("edgeops/deploy/store.py", ("tests/deploy/test_store.py", "tests/deploy/test_store_files.py")),
    "ota": Target("edgeops/agent/ota.py", ("tests/agent/test_ota_machine.py", "tests/agent/test_ota_tables.py"),
                  "the machine and the resume table only: each mutant of the rest runs whole updates (an hour)",
                  tuple(f"edgeops.agent.ota.{f}__mutmut_*" for f in (
                      "xǁOtaǁ_recover", "xǁOtaǁ_resume", "xǁOtaǁ_transition", "xǁOtaǁ_advance",
                      "x_resume_target", "x__load_record"))),
    "ota-chunks": Target("edgeops/agent/ota_transfer.py",
                         ("tests/agent/test_ota_machine.py", "tests/agent/test_ota_tables.py"),
                         "a transfer resumed from disk only, as for ota",
                         ("edgeops.agent.ota_transfer.xǁTransferǁopen__mutmut_*",)),
    "harness": Target("edgeops/bench/harness.py",
                       ("tests/bench/test_harness.py", "tests/bench/test_harness_edges.py")),
}

# Mutants that change nothing a caller can observe, by mutmut name, with the reason.
# mutmut numbers the mutants of a function in order, so an entry goes stale when that
# function changes: the run then prints it under "stale equivalents" to be checked again.
_D, _S, _G = "edgeops.monitor.drift.", "edgeops.runtime.stats.", "edgeops.runtime.guardrails."
_T = "edgeops.bundle._tar."
_FIRST_PART = "split(sep, n)[0] is the part before the first separator, whatever n is"
_CODEC_ALIAS = '"UTF-8" and "utf-8" name the same codec'
_ST = "edgeops.deploy.store."
_READ_MORE = "reads more of a file over the JSON limit before refusing it for its size: only memory differs"
_DEFAULT_ERROR = "DataError is _json.loads's default error"
_CHUNKS = "the sha256 of a file is the same whatever size the chunks it is read in"
_R = "edgeops.bundle.reader."
_NOFOLLOW = "open with O_CREAT | O_EXCL never follows a symlink (POSIX), so O_NOFOLLOW is belt and braces there"
_O = "edgeops.agent.outbox."
_SQL_CASE = "SQL keywords and identifiers are case-insensitive"
_NO_NAN_LEFT = "jsonable has already turned NaN and inf into None, so allow_nan never sees one"
_BIG_ENDIAN = 'int.from_bytes defaults to "big" on Python 3.11+ (on 3.10 it is a TypeError any base-256 test catches)'
_FAST_PATH = "a value on the bound leaves the fast path for the full check, which passes it too"
_SAME_FLOATS = "np.asarray of JSON numbers gives float64 with or without dtype=np.float64"
_PERF_ONLY = "a shortcut: the counts come out the same, only slower"
EQUIVALENT: dict[str, str] = {
    _D + "x__proportions__mutmut_3": _SAME_FLOATS,
    _D + "x__proportions__mutmut_5": _SAME_FLOATS,
    _D + "x_wasserstein_from_counts__mutmut_8": _SAME_FLOATS,
    _D + "x_wasserstein_from_counts__mutmut_10": _SAME_FLOATS,
    _D + "x__reference__mutmut_24": _SAME_FLOATS,
    _D + "x__reference__mutmut_26": _SAME_FLOATS,
    _D + "xǁ_Windowǁflush__mutmut_4": _PERF_ONLY + " (np.concatenate of one array instead of the array)",
    _D + "xǁ_Windowǁflush__mutmut_23": "side='left' is searchsorted's default",
    _D + "xǁ_Windowǁflush__mutmut_24": _PERF_ONLY + " (float64 probes: searchsorted upcasts the values)",
    _D + "xǁ_Windowǁflush__mutmut_31": _PERF_ONLY + " (counting -inf values when there are none gives 0)",
    _D + "xǁ_Windowǁflush__mutmut_42": _PERF_ONLY + " (counting -inf values when there are none gives 0)",
    _D + "xǁ_Windowǁ_probes_in__mutmut_1": _PERF_ONLY + " (the probes of a dtype computed again, not cached)",
    _D + "xǁ_Windowǁ_probes_in__mutmut_2": _PERF_ONLY + " (the probes of a dtype computed again, not cached)",
    _D + "xǁ_Windowǁ_probes_in__mutmut_18": _PERF_ONLY + " (the probes of a dtype computed again, not cached)",
    _D + "xǁ_Windowǁ_probes_in__mutmut_8": _PERF_ONLY + " (float64 probes: searchsorted upcasts the values)",
    _D + "xǁ_Windowǁ_probes_in__mutmut_10": "probes.astype(None) is float64 too",
    _D + "xǁDriftMonitorǁupdate__mutmut_6": "np.asarray of an ndarray returns it unchanged",
    _D + "xǁDriftMonitorǁupdate__mutmut_11": "dtype kinds are single letters; none of them is X",
    _D + "xǁDriftMonitorǁupdate__mutmut_14": "an input of exactly max_values values subsampled with stride 1 is all of it",
    _D + "xǁDriftMonitorǁupdate__mutmut_23": "numpy 2 reads reshape(-2) as reshape(-1)",
    _G + "xǁRangeCheckǁ__post_init____mutmut_7": _SAME_FLOATS + " (or int64, which compares the same)",
    _G + "xǁRangeCheckǁ__post_init____mutmut_9": _SAME_FLOATS + " (or int64, which compares the same)",
    _G + "xǁRangeCheckǁ__post_init____mutmut_12": _SAME_FLOATS + " (or int64, which compares the same)",
    _G + "xǁRangeCheckǁ__post_init____mutmut_14": _SAME_FLOATS + " (or int64, which compares the same)",
    _G + "xǁRangeCheckǁ__post_init____mutmut_26": "the fill is cast to the tensor's dtype where it is used",
    _G + "xǁRangeCheckǁ__post_init____mutmut_28": "the fill is cast to the tensor's dtype where it is used",
    _G + "xǁGuardrailsǁfrom_profile__mutmut_32": _SAME_FLOATS + " (or int64, which compares the same)",
    _G + "xǁGuardrailsǁfrom_profile__mutmut_34": _SAME_FLOATS + " (or int64, which compares the same)",
    _G + "xǁGuardrailsǁfrom_profile__mutmut_54": "the fill is cast to the tensor's dtype where it is used",
    _G + "xǁGuardrailsǁfrom_profile__mutmut_56": "the fill is cast to the tensor's dtype where it is used",
    _G + "xǁRangeCheckǁ__post_init____mutmut_29": _FAST_PATH,
    _G + "xǁRangeCheckǁapply__mutmut_4": _FAST_PATH,
    _G + "xǁRangeCheckǁapply__mutmut_5": _FAST_PATH,
    _G + "xǁRangeCheckǁapply__mutmut_7": _FAST_PATH,
    _G + "xǁRangeCheckǁapply__mutmut_8": _FAST_PATH,
    _G + "xǁRangeCheckǁapply__mutmut_15": "np.isfinite of an integer tensor is all True, as 'no check' assumes",
    _G + "x_load_profile__mutmut_8": "text mode gives a str, which _json.loads takes as well as bytes",
    _G + "x_load_profile__mutmut_23": "DataError is _json.loads's default error",
    _S + "x_bucket_of__mutmut_2": "for 5-bit latencies (16..31 ns) the formula also gives the latency itself",
    _S + "xǁRunStatsǁrecord__mutmut_15": "for 5-bit latencies (16..31 ns) the formula also gives the latency itself",
    _S + "xǁRunStatsǁrecord__mutmut_6": "max_ns = ns when ns == max_ns changes nothing",
    _S + "xǁRunStatsǁrecord__mutmut_8": "min_ns = ns when ns == min_ns changes nothing",
    _S + "xǁRunStatsǁreset__mutmut_9": "any start for min_ns above 2**62 ns (146 years) is above every latency",
    _S + "xǁRunStatsǁreset__mutmut_10": "any start for min_ns above 2**62 ns (146 years) is above every latency",
    _S + "xǁRunStatsǁpercentiles__mutmut_10": 'float("NAN") is NaN too',
    _S + "xǁRunStatsǁsnapshot__mutmut_43": 'float("NAN") is NaN too',
    _S + "xǁRunStatsǁsnapshot__mutmut_52": 'float("NAN") is NaN too',
    _S + "xǁRunStatsǁsnapshot__mutmut_69": 'float("NAN") is NaN too',
    _T + "x__header__mutmut_22": _FIRST_PART,
    _T + "x__header__mutmut_26": _FIRST_PART,
    _T + "x__header__mutmut_32": _FIRST_PART,
    _T + "x__header__mutmut_37": _FIRST_PART,
    _T + "x__octal__mutmut_36": _FIRST_PART,
    _T + "x__octal__mutmut_39": _FIRST_PART,
    _T + "x__header__mutmut_52": _CODEC_ALIAS,
    _T + "x__pax__mutmut_36": _CODEC_ALIAS,
    _T + "x__pax__mutmut_39": _CODEC_ALIAS,
    _T + "x__octal__mutmut_13": _BIG_ENDIAN,
    _T + "x__octal__mutmut_22": _BIG_ENDIAN,
    _T + "x__octal__mutmut_2": "a header field is never empty: field[:2] and field[:1] are both non-empty",
    _T + "x__pax__mutmut_12": "a record that starts with a space has an empty length, which int() refuses the same way",
    _T + "x__pax__mutmut_16": "a length equal to its own digit count ends on a digit, not a newline: refused either way",
    **{_O + f"x__count__mutmut_{n}": _SQL_CASE for n in (8, 9)},
    **{_O + f"x__next_seq__mutmut_{n}": _SQL_CASE for n in (7, 8, 21, 22, 28, 29)},
    **{_O + f"x__open__mutmut_{n}": _SQL_CASE for n in (19, 20)},
    **{_O + f"x__schema_version__mutmut_{n}": _SQL_CASE for n in (4, 5, 7, 8)},
    **{_O + f"x__use_wal__mutmut_{n}": _SQL_CASE for n in (6, 7, 14, 15)},
    **{_O + f"xǁOutboxǁ_expire__mutmut_{n}": _SQL_CASE for n in (7, 8)},
    **{_O + f"xǁOutboxǁ_shrink__mutmut_{n}": _SQL_CASE for n in (5, 16, 17, 31, 32)},
    **{_O + f"xǁOutboxǁack_many__mutmut_{n}": _SQL_CASE for n in (8, 9)},
    **{_O + f"xǁOutboxǁlast_seq__mutmut_{n}": _SQL_CASE for n in (8, 9)},
    **{_O + f"xǁOutboxǁpending__mutmut_{n}": _SQL_CASE for n in (11, 12)},
    **{_O + f"xǁOutboxǁstats__mutmut_{n}": _SQL_CASE for n in (8, 13, 14, 18, 19)},
    _O + "x__count__mutmut_1": "adding 0 to a counter changes nothing",
    _O + "x__encode__mutmut_15": _CODEC_ALIAS,
    **{_O + f"x__encode__mutmut_{n}": _NO_NAN_LEFT for n in (4, 8, 12)},
    _O + "x__encode__mutmut_5": "ensure_ascii=None is falsy, as False is",
    **{_O + f"x__use_wal__mutmut_{n}": "a mode compared that never matches only asks for WAL once more, which is "
                                       "a no-op on a WAL file" for n in (3, 10, 11)},
    _O + "xǁOutboxǁappend__mutmut_44": "lastrowid is always set right after an INSERT",
    _O + "xǁOutboxǁpending__mutmut_13": _PERF_ONLY + " (the expiry runs on every call; it deletes only expired rows)",
    _O + "xǁOutboxǁstats__mutmut_6": "BEGIN IMMEDIATE also gives one snapshot; it only waits for writers more",
    _ST + "x__read_slot_meta__mutmut_4": "text mode gives a str, which _json.loads takes as well as bytes",
    _ST + "x__read_slot_meta__mutmut_17": _DEFAULT_ERROR,
    _ST + "xǁModelStoreǁpointer__mutmut_18": _DEFAULT_ERROR,
    _ST + "x__read_slot_meta__mutmut_18": _READ_MORE,
    _ST + "x__read_slot_meta__mutmut_20": _READ_MORE,
    _ST + "xǁModelStoreǁpointer__mutmut_8": _READ_MORE,
    _ST + "xǁModelStoreǁpointer__mutmut_10": _READ_MORE,
    _ST + "x__sha256__mutmut_13": _CHUNKS,
    _ST + "x__sha256__mutmut_15": _CHUNKS,
    _ST + "x__sha256__mutmut_16": _CHUNKS,
    _ST + "xǁModelStoreǁ_slot_checked__mutmut_1": "only install's last check uses the default: hashing the model "
                                                  "extract has just checked gives the same answer, slower",
    **{_R + f"x__write_member__mutmut_{n}": _NOFOLLOW for n in (27, 29, 32, 33, 34, 35)},
    _R + "x__write_member__mutmut_6": "the signature is written only when the bundle has one, so it is never None there",
    _ST + "x__remove_tree__mutmut_7": "install's sweep has already removed S.old, under the same lock",
    _ST + "xǁModelStoreǁload_active__mutmut_12": "a shortcut: Model.sha256 computes the same digest on demand",
}


@dataclass
class Score:
    name: str
    statuses: Counter[str] = field(default_factory=Counter)
    survivors: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    @property
    def counted(self) -> int:
        return sum(self.statuses.values()) - self.statuses["equivalent"]

    @property
    def detected(self) -> int:
        return self.statuses["killed"] + self.statuses["timeout"]

    @property
    def percent(self) -> float:
        return 100.0 * self.detected / self.counted if self.counted else 100.0

    def line(self) -> str:
        if self.error:
            return f"{self.name:<11} ERROR: {self.error}"
        s = self.statuses
        other = self.counted - self.detected - s["survived"] - s["no tests"]
        return (f"{self.name:<11} {s['killed']:>6} {s['timeout']:>7} {s['survived']:>8} {s['no tests']:>8} "
                f"{other:>5} {s['equivalent']:>5}   {self.detected:>4}/{self.counted:<4} {self.percent:5.1f} %"
                f"   {self.seconds:5.0f} s")


HEADER = (f"{'module':<11} {'killed':>6} {'timeout':>7} {'survived':>8} {'no tests':>8} {'other':>5} {'equiv':>5}"
          f"   {'score':>9}          time")


def prepare(name: str, target: Target, jobs: int) -> Path:
    """A scratch copy of the tree with a ``[mutmut]`` section for this one module."""
    work = SCRATCH / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "mutants")
    for entry in COPY:
        src = ROOT / entry
        if src.is_dir():
            shutil.copytree(src, work / entry, ignore=ignore)
        else:
            shutil.copy2(src, work / entry)
    section = "\n".join([
        "",
        "[mutmut]",
        "source_paths = edgeops",
        f"only_mutate = {target.module}",
        "also_copy =",
        "    examples",
        "pytest_add_cli_args_test_selection =",
        *(f"    {t}" for t in target.tests),
        "pytest_add_cli_args =",
        "    -p",
        "    no:cacheprovider",
        "    -q",
        "use_git_change_detection = false",
        "use_setproctitle = false",
        "",
    ])
    with open(work / "setup.cfg", "a", encoding="utf-8") as fh:
        fh.write(section)
    return work


def run_one(name: str, target: Target, jobs: int, show: bool, keep: bool, verbose: bool) -> Score:
    from mutmut.stats import status_by_exit_code

    score = Score(name)
    start = time.monotonic()
    work = prepare(name, target, jobs)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MUTANT_UNDER_TEST")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        proc = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *target.functions],
                              cwd=work, env=env, capture_output=True, text=True)
        if verbose or proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        meta = work / "mutants" / (target.module + ".meta")
        if proc.returncode != 0 or not meta.is_file():
            score.error = f"mutmut exited {proc.returncode} (rerun with --verbose --keep and look in {work})"
            return score
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        for mutant, code in sorted(codes.items()):
            status = status_by_exit_code[code]
            if target.functions and status == "not checked":
                continue  # outside the functions this target mutates
            if mutant in EQUIVALENT:
                if status != "survived":
                    score.stale.append(mutant)
                status = "equivalent"
            score.statuses[status] += 1
            if status == "survived":
                score.survivors.append(mutant)
        score.stale += [m for m in EQUIVALENT if m.startswith(_prefix(target.module)) and m not in codes]
        if show:
            for mutant in score.survivors:
                diff = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=work, env=env,
                                      capture_output=True, text=True)
                print(diff.stdout.rstrip() or mutant)
        return score
    finally:
        score.seconds = time.monotonic() - start
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _prefix(module: str) -> str:
    return module[:-3].replace("/", ".") + "."


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("names", nargs="*", metavar="MODULE", help=f"short names (default: all): {', '.join(MODULES)}")
    ap.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    ap.add_argument("--list", action="store_true", help="print the modules and their test files, run nothing")
    ap.add_argument("--show", action="store_true", help="print the diff of each surviving mutant")
    ap.add_argument("--keep", action="store_true", help=f"keep the scratch copies under {SCRATCH.relative_to(ROOT)}")
    ap.add_argument("--verbose", action="store_true", help="print mutmut's own output")
    ap.add_argument("--fail-under", type=float, default=None, metavar="PCT",
                    help="exit 1 when a module scores below PCT %%")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in MODULES]
    if unknown:
        ap.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    names = args.names or list(MODULES)
    if args.list:
        for n in names:
            t = MODULES[n]
            print(f"{n:<11} {t.module:<32} {' '.join(t.tests)}" + (f"  ({t.note})" if t.note else "")
                  + (f"\n{'':<11} only {' '.join(t.functions)}" if t.functions else ""))
        return 0
    try:
        import mutmut  # noqa: F401
    except ImportError:
        print("mutation testing needs mutmut 3: pip install 'mutmut>=3.3'", file=sys.stderr)
        return 2

    scores = []
    for n in names:
        print(f"mutating {MODULES[n].module} against {' '.join(MODULES[n].tests)} ...", file=sys.stderr, flush=True)
        score = run_one(n, MODULES[n], args.jobs, args.show, args.keep, args.verbose)
        scores.append(score)
        print(score.line(), flush=True)
        for m in score.survivors:
            print(f"    survived: {m}")
        for m in score.stale:
            print(f"    stale equivalent (killed or gone now; check EQUIVALENT): {m}")

    done = [s for s in scores if not s.error]
    total = sum(s.counted for s in done)
    detected = sum(s.detected for s in done)
    print()
    print(HEADER)
    for s in scores:
        print(s.line())
    print(f"{'overall':<11} {detected}/{total} detected, {100.0 * detected / total if total else 100.0:.1f} %")
    if any(s.error for s in scores):
        return 1
    if args.fail_under is not None and any(s.percent < args.fail_under for s in done):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
