"""TFLite's quantization arithmetic in Python, for the parameters and tables a generated model bakes in.

Everything here is computed at convert time exactly as TFLite Micro computes it in its kernels'
``Prepare`` (``QuantizeMultiplier`` through ``frexp``, activation ranges through a float division and
``std::round``) or, for the int8 ops that are a function of one int8 value (LOGISTIC, TANH, HARD_SWISH,
int8 QUANTIZE), as the whole 256-entry table their reference kernel would produce, by the same integer
(gemmlowp) algorithm. SOFTMAX gets the table of ``exp_on_negative_values`` for each input difference.
Integers are Python ints with int32 saturation and wrapping applied where the C++ has them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def round_half_away(x: float) -> float:
    """``std::round``: halves away from zero."""
    return math.copysign(math.floor(abs(x) + 0.5), x) if abs(x) < 2 ** 52 else x


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: (Q0.31 multiplier, shift) with real = multiplier * 2^(shift - 31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    fixed = int(round_half_away(q * (1 << 31)))
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        shift, fixed = 0, 0
    return fixed, shift


def activation_range(activation: int, scale: float, zero_point: int, qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """``CalculateActivationRangeQuantized``: 0 NONE, 1 RELU, 2 RELU_N1_TO_1, 3 RELU6 (schema codes)."""
    f32 = np.float32

    def quantize(f: float) -> int:
        return zero_point + int(round_half_away(float(f32(f) / f32(scale))))

    if activation == 1:
        return max(qmin, quantize(0.0)), qmax
    if activation == 3:
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == 2:
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    return qmin, qmax


def _i32(x: int) -> int:
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul (int32)."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return int((ab + nudge) / (1 << 31)) if abs(ab + nudge) < 2 ** 52 else _trunc_div(ab + nudge, 1 << 31)


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def rdbpot(x: int, exponent: int) -> int:
    """RoundingDivideByPOT (int32, arithmetic shift)."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def mbqm(x: int, multiplier: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier (the double-rounding form TFLite Micro's reference kernels use)."""
    left, right = (shift, 0) if shift > 0 else (0, -shift)
    return rdbpot(srdhm(_i32(x * (1 << left)), multiplier), right)


def sat_shift_left(x: int, e: int) -> int:
    """gemmlowp SaturatingRoundingMultiplyByPOT with a positive exponent."""
    threshold = (1 << (31 - e)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return x << e


def input_radius(integer_bits: int, left_shift: int, total_bits: int = 31) -> int:
    """``CalculateInputRadius``."""
    rescaled = 1.0 * ((1 << integer_bits) - 1) * (1 << (total_bits - integer_bits)) / (1 << left_shift)
    return int(math.floor(rescaled))


# gemmlowp fixed point on raw int32 values; integer_bits says the format where it matters.

def _exp_quarter(a: int) -> int:
    """exp_on_interval_between_negative_one_quarter_and_0_excl (Q0.31 in and out)."""
    constant_term, one_third = 1895147668, 715827883
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    poly = rdbpot(srdhm(x4_over_4 + x3, one_third) + x2, 1)
    return constant_term + srdhm(constant_term, x + poly)


_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """gemmlowp ``exp_on_negative_values`` of a raw value with ``integer_bits``; Q0.31 result."""
    fractional = 31 - integer_bits
    quarter = 1 << (fractional - 2)
    mod = (a & (quarter - 1)) - quarter
    result = _exp_quarter(sat_shift_left(mod, integer_bits) if integer_bits else mod)
    remainder = mod - a
    for exponent, multiplier in _BARREL:
        if integer_bits > exponent and remainder & (1 << (fractional + exponent)):
            result = srdhm(result, multiplier)
    if integer_bits > 5 and a < -(1 << (36 - integer_bits)):
        result = 0
    return INT32_MAX if a == 0 else result


def _reciprocal_iterate(a: int) -> int:
    """Newton iterations of gemmlowp: x ~ 1 / ((1 + a) / 2) in Q2.29."""
    s = a + INT32_MAX
    half_denominator = _trunc_div(s + (1 if s >= 0 else -1), 2)
    x = 1515870810 + srdhm(half_denominator, -1010580540)
    for _ in range(3):
        one_minus = (1 << 29) - srdhm(half_denominator, x)
        x = x + sat_shift_left(srdhm(x, one_minus), 2)
    return x


def one_over_one_plus_x(a: int) -> int:
    return sat_shift_left(_reciprocal_iterate(a), 1)


def one_minus_x_over_one_plus_x(a: int) -> int:
    return sat_shift_left(_reciprocal_iterate(a) - (1 << 29), 2)


def logistic_q(a: int, integer_bits: int) -> int:
    """gemmlowp ``logistic``: Q0.31 result."""
    if a == 0:
        return 1 << 30
    positive = one_over_one_plus_x(exp_on_negative_values(-abs(a), integer_bits))
    return positive if a > 0 else INT32_MAX - positive


def tanh_q(a: int, integer_bits: int) -> int:
    """gemmlowp ``tanh``: Q0.31 result."""
    if a == 0:
        return 0
    t = one_minus_x_over_one_plus_x(exp_on_negative_values(-abs(a), integer_bits + 1))
    return -t if a < 0 else t


def _input_rescale(scale: float) -> tuple[int, int, int]:
    """Prepare of int8 LOGISTIC and TANH: the multiplier, left shift and radius of a Q4.27 input."""
    real = float(np.float32(scale)) * float(1 << (31 - 4))
    q, shift = math.frexp(real)
    multiplier = int(round_half_away(q * (1 << 31)))
    return multiplier, shift, input_radius(4, shift, 31)


def _saturating_table(in_scale: float, in_zp: int, inner: Callable[[int], int]) -> np.ndarray:
    """The 256 int8 results of LOGISTIC or TANH: saturated beyond the input radius, else ``inner`` of the
    Q4.27 input."""
    multiplier, shift, radius = _input_rescale(in_scale)
    out = []
    for v in range(-128, 128):
        x = v - in_zp
        if x <= -radius:
            out.append(-128)
        elif x >= radius:
            out.append(127)
        else:
            out.append(min(max(inner(mbqm(x, multiplier, shift)), -128), 127))
    return np.array(out, np.int8)


def logistic_table(in_scale: float, in_zp: int) -> np.ndarray:
    return _saturating_table(in_scale, in_zp, lambda q: rdbpot(logistic_q(q, 4), 31 - 8) - 128)


def tanh_table(in_scale: float, in_zp: int) -> np.ndarray:
    return _saturating_table(in_scale, in_zp, lambda q: rdbpot(tanh_q(q, 4), 31 - 7))


def requantize_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """int8 -> int8 QUANTIZE (``reference_ops::Requantize``)."""
    multiplier, shift = quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    return np.array([min(max(mbqm(v - in_zp, multiplier, shift) + out_zp, -128), 127) for v in range(-128, 128)],
                    np.int8)


def _i16_srdhm(a: int, b: int) -> int:
    if a == b == -32768:
        return 32767
    ab = a * b
    nudge = (1 << 14) if ab >= 0 else 1 - (1 << 14)
    return _trunc_div(ab + nudge, 1 << 15)


def _i16_clamp(x: int) -> int:
    return min(max(x, -32768), 32767)


def _downscale_to_i16(m: int) -> int:
    if m >= INT32_MAX - (1 << 15):
        return 32767
    return (m + (1 << 15)) >> 16


def hard_swish_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """int8 HARD_SWISH (``reference_ops::HardSwish`` with its Prepare in float32, as TFLite Micro)."""
    f32 = np.float32
    hires_input_scale = f32(1.0 / 128.0) * f32(in_scale)
    reluish_scale = f32(3.0) / f32(32768.0)
    out_m32, out_exp = quantize_multiplier(float(hires_input_scale / f32(out_scale)))
    out_m16 = _downscale_to_i16(out_m32)
    rel_m32, rel_exp = quantize_multiplier(float(hires_input_scale / reluish_scale))
    rel_m16 = _downscale_to_i16(rel_m32)
    table = []
    for v in range(-128, 128):
        x = v - in_zp
        hires = x * 128
        preshift = _i16_srdhm(hires, out_m16)
        reluish = hires
        if rel_exp > 0:
            reluish = _i16_clamp(reluish * (1 << (rel_exp - 1)))
        reluish = _i16_srdhm(reluish, rel_m16)
        if rel_exp > 0:
            reluish = _i16_clamp(reluish * 2)
        if rel_exp < 0:
            reluish = rdbpot(reluish, -rel_exp)
        reluish = (reluish + (1 << 15)) >> 1
        prod = reluish * preshift
        out = _trunc_div(prod, 1 << 15) if not (reluish == preshift == -32768) else 32767
        out = rdbpot(out, -out_exp) + out_zp
        table.append(min(max(out, -128), 127))
    return np.array(table, np.int8)


def softmax_params(beta: float, in_scale: float) -> tuple[np.ndarray, int]:
    """int8 SOFTMAX: the table of exp(-d) in Q0.31 for d = max - x in 0..255, and diff_min."""
    real = min(float(beta) * float(np.float32(in_scale)) * float(1 << (31 - 5)), float((1 << 31) - 1))
    multiplier, left_shift = quantize_multiplier(real)
    diff_min = -input_radius(5, left_shift)
    table = np.zeros(256, np.int32)
    for d in range(256):
        if -d >= diff_min:
            rescaled = srdhm(_i32(-d * (1 << left_shift)), multiplier)
            table[d] = exp_on_negative_values(rescaled, 5)
    return table, diff_min


def mean_multiplier(in_scale: float, out_scale: float, count: int) -> tuple[int, int]:
    """int8 MEAN: ``QuantizeMultiplier(in_scale / out_scale)`` with 1/count folded in as QuantizedMeanOrSum does."""
    multiplier, shift = quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    if count <= 0:
        return multiplier, shift
    s = min(count.bit_length() - 1, 32, 31 + shift)
    return _trunc_div(multiplier << s, count), shift - s
