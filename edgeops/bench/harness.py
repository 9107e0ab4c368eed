"""The latency harness: load, first inference, warmup and steady state, measured apart.

Each model is opened with :func:`edgeops.load` and run with ``Model.run``, the
code a device runs in production, so the numbers are what the application will
see. Steady state runs until both ``runs`` and ``min_duration`` are reached, or
``max_duration`` passes (TFLite benchmark_model's num_runs / min_secs /
max_secs). Each latency is kept (a benchmark can afford it) and summarised with
exact percentiles. Around the run: peak RSS and its growth, CPU% of the process,
CPU frequency and temperature, and warnings when the numbers should not be trusted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import UsageError
from ..loading import load
from ..runtime import input_shapes
from ..runtime.model import Model
from ..runtime.preprocess import Preprocess
from . import system
from .inputs import concrete_shape, data_pool, random_pool

CV_WARN = 0.10  # coefficient of variation above which timings are called unstable
DRIFT_WARN = 1.20  # last tenth of the run this much slower than the first tenth: throttling or load
HOT_C = 80.0
MIN_DURATION = 1.0  # seconds of steady state by default, unless --max-duration is shorter


@dataclass
class Settings:
    """What to run and how long. ``min_duration`` left ``None`` is 1 s, or ``max_duration`` when that is
    shorter; ``batch`` left ``None`` is the batch ``input_shapes`` gives, else 1."""

    runs: int = 100
    warmup: int = 10
    min_duration: float | None = None
    max_duration: float = 150.0
    threads: int | None = None
    backend: str | None = None
    providers: list[Any] | None = None
    batch: int | None = None
    data: str | None = None
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    seed: int = 0
    preprocess: Preprocess | None = None  # set: end-to-end mode, preprocessing inside the timed loop
    cv_warn: float = CV_WARN

    @property
    def batch_size(self) -> int:
        """The batch fed to dynamic batch axes, once the settings are resolved for a model (``batch`` set)."""
        if self.batch is None:
            raise RuntimeError("Settings.batch is filled in for a model before the run; resolve the settings first")
        return self.batch

    def check(self) -> Settings:
        """The settings with the defaults that depend on others filled in, or a UsageError naming the options."""
        if self.runs < 1 or self.warmup < 0 or (self.batch is not None and self.batch < 1):
            raise UsageError("--runs and --batch must be at least 1 and --warmup at least 0")
        if self.max_duration <= 0:
            raise UsageError(f"--max-duration must be above 0 s, not {self.max_duration:g}")
        if self.min_duration is None:
            return replace(self, min_duration=min(MIN_DURATION, self.max_duration))
        if self.min_duration < 0 or self.min_duration > self.max_duration:
            raise UsageError(f"--min-duration {self.min_duration:g} s must be between 0 and --max-duration "
                             f"{self.max_duration:g} s")
        return self


@dataclass
class BenchResult:
    """One model's measurements; ``to_dict()`` is the ``--json`` object."""

    model: str
    info: dict[str, Any]
    samples_ms: np.ndarray
    data: dict[str, Any]

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        d = {"model": self.model, **self.info, **self.data}
        if samples:
            d["samples_ms"] = self.samples_ms.tolist()
        return d


Progress = Callable[[str, float], None]  # (model label, fraction done)


def run(models: Sequence[str | os.PathLike[str] | Model], settings: Settings | None = None, *,
        probe: system.SystemProbe | None = None, progress: Progress | None = None, **kwargs: Any) -> list[BenchResult]:
    """Benchmark each model in turn; keyword arguments set :class:`Settings` fields."""
    s = settings or Settings(**kwargs)
    if settings is not None and kwargs:
        raise UsageError("pass either settings or keyword arguments")
    s = s.check()
    probe = probe or system.SystemProbe()
    return [bench_one(m, s, probe, progress) for m in models]


def bench_one(model_or_path: str | os.PathLike[str] | Model, s: Settings, probe: system.SystemProbe,
              progress: Progress | None = None) -> BenchResult:
    label = model_or_path.path if isinstance(model_or_path, Model) else os.fspath(model_or_path)
    label = label or "(in memory)"
    start = probe.read()
    rss0 = system.rss_mb()
    system.reset_peak_rss()
    t0 = time.perf_counter()
    model = model_or_path if isinstance(model_or_path, Model) else load(
        model_or_path, backend=s.backend, threads=s.threads, providers=s.providers)
    init_ms = (time.perf_counter() - t0) * 1e3 if not isinstance(model_or_path, Model) else None
    s = _with_batch(model, s)
    pool, step = _feeds(model, s)

    first_ms = _time_ms(step, pool[0])
    warm = [_time_ms(step, pool[(i + 1) % len(pool)]) for i in range(s.warmup)]

    times, wall, cpu, readings = _steady(step, pool, 1 + s.warmup, s, probe, label, progress)
    end = probe.read()
    readings = [start, *readings, end]
    rss1 = system.rss_mb()
    samples = np.asarray(times, dtype=np.float64) / 1e6
    data = _summary(samples, wall, cpu, s)
    data.update({
        "init_ms": init_ms,
        "first_inference_ms": first_ms,
        "warmup": {"count": len(warm), "mean_ms": float(np.mean(warm)) if warm else None},
        "peak_rss_mb": system.peak_rss_mb(),
        "rss_delta_mb": (rss1 - rss0) if rss0 is not None and rss1 is not None else None,
        "system": {**probe.describe(), **_system(readings)},
    })
    data["warnings"] = warnings_for(samples, data, readings, s)
    info = {
        "format": model.format,
        "backend": model.backend,
        "providers": model.providers,
        "threads": s.threads,
        "batch": s.batch,
        "inputs": f"data:{s.data}" if s.data else "random",
        "end_to_end": s.preprocess is not None,
    }
    return BenchResult(label, info, samples, data)


def _with_batch(model: Model, s: Settings) -> Settings:
    """``s`` with ``input_shapes`` checked against the model and ``batch`` set: the one ``--input-shape``
    gives for a dynamic batch axis, else ``--batch``, else 1; the two disagreeing is a UsageError."""
    declared = {spec.name: spec.shape for spec in model.inputs}
    shapes = input_shapes.check(s.input_shapes, declared)
    given = input_shapes.batch_of(shapes, declared)
    if given is not None and s.batch is not None and s.batch != given:
        shown = next(f"{n}:{','.join(map(str, sh))}" for n, sh in shapes.items() if sh[0] == given)
        raise UsageError(f"--batch {s.batch} and --input-shape {shown} disagree on the batch; give one of them")
    return replace(s, input_shapes=shapes, batch=given or s.batch or 1)


def _feeds(model: Model, s: Settings) -> tuple[list[Any], Callable[[Any], Any]]:
    """The pool of inputs and the step to time: ``model.run`` (with preprocessing in end-to-end mode)."""
    if s.data:
        pool = data_pool(s.data, model.inputs, s.batch_size)
    else:
        shapes = {spec.name: concrete_shape(spec, s.batch_size, s.input_shapes) for spec in model.inputs}
        raw = None
        if s.preprocess is not None:
            pre = s.preprocess

            def raw(spec: Any, shape: tuple[int, ...]) -> tuple[tuple[int, ...], str]:
                return pre.raw_shape(shape), ("uint8" if pre.scale != 1.0 else "float32")

        pool = random_pool(model.inputs, shapes, s.seed, s.runs + s.warmup + 1, raw)
    if s.preprocess is None:
        return pool, model.run
    pre = s.preprocess
    return pool, lambda feeds: model.run({k: pre(v) for k, v in feeds.items()})


def _time_ms(step: Callable[[Any], Any], feeds: Any) -> float:
    t0 = time.perf_counter_ns()
    step(feeds)
    return (time.perf_counter_ns() - t0) / 1e6


def _steady(step: Callable[[Any], Any], pool: list[Any], offset: int, s: Settings, probe: system.SystemProbe,
            label: str, progress: Progress | None) -> tuple[list[int], float, float, list[system.Reading]]:
    clock = time.perf_counter_ns
    times: list[int] = []
    append = times.append
    readings: list[system.Reading] = []
    n_pool = len(pool)
    min_ns, max_ns = int((s.min_duration or 0.0) * 1e9), int(s.max_duration * 1e9)
    cpu0 = time.process_time()  # this process's CPU time, all threads, nanosecond clock
    begin = clock()
    next_check = begin + 100_000_000  # look at the clock for progress and the stop rule every 0.1 s
    next_probe = begin + 1_000_000_000
    i = 0
    while True:
        feeds = pool[(offset + i) % n_pool]  # go on cycling where the warmup stopped
        t0 = clock()
        step(feeds)
        t1 = clock()
        append(t1 - t0)
        i += 1
        if i >= s.runs and t1 - begin >= min_ns or t1 - begin >= max_ns:
            break
        if t1 >= next_check:
            next_check = t1 + 100_000_000
            if progress:
                progress(label, max(min(i / s.runs, 1.0) if s.runs else 1.0, 0.0) * 0.5
                         + min((t1 - begin) / max(min_ns, 1), 1.0) * 0.5)
            if t1 >= next_probe:
                next_probe = t1 + 1_000_000_000
                readings.append(probe.read())
    wall = (clock() - begin) / 1e9
    cpu = (time.process_time() - cpu0) / wall * 100 if wall > 0 else float("nan")
    if progress:
        progress(label, 1.0)
    return times, wall, cpu, readings


def _summary(ms: np.ndarray, wall: float, cpu: float, s: Settings) -> dict[str, Any]:
    p = np.percentile(ms, [50, 90, 95, 99, 99.9])
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if len(ms) > 1 else 0.0
    return {
        "runs": int(len(ms)),
        "duration_s": wall,
        "latency_ms": {"mean": mean, "std": std, "min": float(ms.min()), "p50": float(p[0]), "p90": float(p[1]),
                       "p95": float(p[2]), "p99": float(p[3]), "p999": float(p[4]), "max": float(ms.max())},
        "cv": std / mean if mean > 0 else None,
        "throughput_per_s": len(ms) * s.batch_size / wall if wall > 0 else None,  # samples per wall-clock second
        "cpu_percent": cpu,
    }


def _system(readings: list[system.Reading]) -> dict[str, Any]:
    freqs = [r.cpu_freq_mhz for r in readings if r.cpu_freq_mhz is not None]
    temps = [r.temperature_c for r in readings if r.temperature_c is not None]
    flags = [r.throttled for r in readings if r.throttled is not None]
    return {
        "cpu_freq_mhz": {"start": freqs[0], "end": freqs[-1], "min": min(freqs), "max": max(freqs)} if freqs else None,
        "temperature_c": {"start": temps[0], "end": temps[-1], "max": max(temps)} if temps else None,
        "throttled_flags": hex(flags[-1]) if flags else None,
    }


def warnings_for(ms: np.ndarray, data: dict[str, Any], readings: list[system.Reading], s: Settings) -> list[str]:
    """What makes these numbers less trustworthy, in words (trtexec-style)."""
    out = []
    cv = data.get("cv")
    if cv is not None and cv > s.cv_warn:
        out.append(f"unstable timings: coefficient of variation {cv:.1%} is above {s.cv_warn:.0%}; close other "
                   "programs, pin threads (--threads) or run longer (--min-duration)")
    n = len(ms)
    if n < 100:
        out.append(f"only {n} steady-state runs: p99 needs at least 100 and p99.9 at least 1000 to mean more "
                   "than the maximum; raise --runs or --min-duration")
    elif n < 1000:
        out.append(f"only {n} steady-state runs: p99.9 needs at least 1000 to mean more than the maximum")
    freqs = [r.cpu_freq_mhz for r in readings if r.cpu_freq_mhz]
    if len(freqs) >= 2 and min(freqs[1:]) < 0.9 * freqs[0]:
        out.append(f"throttling: CPU frequency fell from {freqs[0]:.0f} MHz to {min(freqs[1:]):.0f} MHz during the run")
    temps = [r.temperature_c for r in readings if r.temperature_c is not None]
    if temps and max(temps) >= HOT_C:
        out.append(f"throttling likely: the CPU reached {max(temps):.0f} °C")
    flags = [r.throttled for r in readings if r.throttled]
    if flags:
        out.append(f"throttling: the Raspberry Pi firmware reports get_throttled={hex(flags[-1])} "
                   "(under-voltage or thermal limit)")
    if n >= 200:
        tenth = n // 10
        first, last = float(np.median(ms[:tenth])), float(np.median(ms[-tenth:]))
        if first > 0 and last > DRIFT_WARN * first:
            out.append(f"latency drift: the last tenth of the run was {last / first - 1:.0%} slower than the first "
                       "(throttling or background load)")
    return out


def progress_bar() -> tuple[Progress, Callable[[], None]]:
    """Progress on stderr (a terminal only): ``(update, close)``."""
    from .._progress import Bars

    bars = Bars()
    return (lambda label, fraction: bars.update(f"bench {os.path.basename(label)}", fraction)), bars.close
