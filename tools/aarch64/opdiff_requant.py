"""Recompute one int8 CONV_2D or FULLY_CONNECTED from the tensors ``opdiff.py run --dump`` kept on both
machines, and count where each requantization rounding reproduces each machine's output:

* double rounding (gemmlowp / TFLite reference: SaturatingRoundingDoublingHighMul, then a rounding shift);
* single rounding (one rounding shift of the 64-bit product acc * multiplier).

Usage: python opdiff_requant.py X86.npz ARM.npz MODEL_int8.tflite OP_INDEX PAD
(PAD: the SAME padding of a convolution, 0 for VALID or a fully-connected op).
"""

from __future__ import annotations

import sys

import numpy as np


def _multiplier(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's QuantizeMultiplier: real = qm * 2^(shift - 31), qm in [2^30, 2^31)."""
    q, shift = np.frexp(real)
    qm = np.round(q * (1 << 31)).astype(np.int64)
    shift = np.where(qm == 1 << 31, shift + 1, shift)
    return np.where(qm == 1 << 31, 1 << 30, qm), shift


def _double(acc, qm, shift, half_away: bool):
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    v = (acc << left) * qm
    if half_away:  # SaturatingRoundingDoublingHighMul rounds half away from zero, RoundingDivideByPOT too
        hi = np.sign(v) * ((np.abs(v) + (1 << 30)) >> 31)
        return np.sign(hi) * ((np.abs(hi) + ((np.int64(1) << right) >> 1)) >> right)
    hi = (v + (1 << 30)) >> 31  # half up at both steps (NEON sqrdmulh + srshl)
    return (hi + ((np.int64(1) << right) >> 1)) >> right


def _single(acc, qm, shift):
    n = 31 - shift
    return (acc * qm + (np.int64(1) << (n - 1))) >> n


def main(x86: str, arm: str, model: str, op: int, pad: int) -> None:
    from ai_edge_litert.interpreter import Interpreter

    a, b = np.load(x86), np.load(arm)
    stem = model.rsplit("/", 1)[-1].removesuffix(".tflite")
    interp = Interpreter(model_path=model)
    det = {d["index"]: d for d in interp.get_tensor_details()}
    node = interp._get_ops_details()[op]
    ti, tw, tb = node["inputs"][:3]
    to = node["outputs"][0]
    x = a[f"{stem}|t|{ti}"].astype(np.int64)
    assert np.array_equal(a[f"{stem}|t|{ti}"], b[f"{stem}|t|{ti}"]), "the inputs differ already"
    w = a[f"{stem}|t|{tw}"].astype(np.int64)
    bias = a[f"{stem}|t|{tb}"].astype(np.int64)
    ya, yb = a[f"{stem}|t|{to}"].astype(np.int64), b[f"{stem}|t|{to}"].astype(np.int64)
    s_in, zp_in = det[ti]["quantization"]
    s_out, zp_out = det[to]["quantization"]
    s_w = det[tw]["quantization_parameters"]["scales"].astype(np.float64)
    if w.ndim == 2:  # fully connected: a 1x1 convolution over the rows
        x, w = x.reshape(1, 1, -1, w.shape[1]), w[:, None, None, :]
        ya, yb = ya.reshape(1, 1, -1, w.shape[0]), yb.reshape(1, 1, -1, w.shape[0])
    _, kh, kw, _ = w.shape
    oh, ow = ya.shape[1:3]
    xp = np.pad(x - zp_in, ((0, 0), (pad * (kh > 1),) * 2, (pad * (kw > 1),) * 2, (0, 0)))
    sh = (xp.shape[1] - kh) // (oh - 1) if oh > 1 else 1
    sw = (xp.shape[2] - kw) // (ow - 1) if ow > 1 else 1
    acc = np.zeros((oh, ow, w.shape[0]), np.int64) + bias
    for i in range(kh):
        for j in range(kw):
            acc += xp[0, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] @ w[:, i, j, :].T
    qm, shift = (np.broadcast_to(v, acc.shape) for v in _multiplier(s_in * s_w / s_out))
    inside = (ya[0] > -128) & (ya[0] < 127) & (yb[0] > -128) & (yb[0] < 127)
    for name, r in [("double rounding, half away (TFLite reference)", _double(acc, qm, shift, True)),
                    ("double rounding, half up (gemmlowp/NEON style)", _double(acc, qm, shift, False)),
                    ("single rounding, half up", _single(acc, qm, shift))]:
        r = np.clip(r + zp_out, -128, 127)
        print(f"{name:48s} = x86 at {np.sum((r == ya[0]) & inside)}/{inside.sum()}, "
              f"= aarch64 at {np.sum((r == yb[0]) & inside)}/{inside.sum()}")
    exact = acc * (s_in * s_w / s_out)
    for p in map(tuple, np.argwhere(ya[0] != yb[0])[:5]):
        print(f"differs at {p}: acc {acc[p]}, acc*M exactly {exact[p]:.6f}, x86 {ya[0][p] - zp_out}, "
              f"aarch64 {yb[0][p] - zp_out}")


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
