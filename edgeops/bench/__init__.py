"""Latency benchmarks through the production runtime: ``edgeops bench`` and ``edgeops.bench.run``.

    from edgeops import bench
    results = bench.run(["model.onnx", "model_int8.onnx"], runs=500, threads=1)
    print(results[0].to_dict()["latency_ms"]["p95"])

See :mod:`.harness` for what is measured and :mod:`.report` for the renderers.
"""

from .harness import BenchResult, Settings, run
from .system import FixedProbe, Reading, SystemProbe

__all__ = ["run", "Settings", "BenchResult", "SystemProbe", "FixedProbe", "Reading"]
