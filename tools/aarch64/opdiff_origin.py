"""The ops whose inputs are bit-identical on x86 and aarch64 but whose output is not: where a kernel itself
differs, as opposed to a difference that only flows through.

Usage: python opdiff_origin.py X86.npz ARM.npz MODEL.tflite ... (the .npz files of `opdiff.py run --dump`)
"""

from __future__ import annotations

import collections
import sys

import numpy as np


def main(x86: str, arm: str, models: list[str]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    a, b = np.load(x86), np.load(arm)
    for model in models:
        stem = model.rsplit("/", 1)[-1].removesuffix(".tflite")
        differing: collections.Counter[str] = collections.Counter()
        checked: collections.Counter[str] = collections.Counter()
        first: dict[str, str] = {}
        for i, op in enumerate(Interpreter(model_path=model)._get_ops_details()):
            keys = [f"{stem}|t|{t}" for t in op["inputs"] if t >= 0]
            if not all(k in a.files for k in keys) or not all(np.array_equal(a[k], b[k]) for k in keys):
                continue
            checked[op["op_name"]] += 1
            out = f"{stem}|t|{op['outputs'][0]}"
            x, y = a[out].astype(np.float64), b[out].astype(np.float64)
            if not np.array_equal(x, y):
                differing[op["op_name"]] += 1
                first.setdefault(op["op_name"], f"first #{i}: {np.sum(x != y)}/{x.size} values, "
                                                f"max |diff| {np.abs(x - y).max():.3g}")
        print(f"{stem}: " + ("; ".join(f"{k} {v}/{checked[k]} ({first[k]})" for k, v in differing.items())
                             or "no kernel differs on identical inputs"))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
