/* A hand-written int8 FULLY_CONNECTED with TFLite's requantization, for the Cortex-M4 harness tests.
 *
 * out[o] = clamp(zp_out + rescale(sum_i (in[i] - zp_in) * w[o][i] + bias[o]), -128, 127), where
 * rescale is gemmlowp's SaturatingRoundingDoublingHighMul by FC_MULTIPLIER then a rounding right
 * shift by FC_SHIFT. The weights, bias and quantization parameters come from fc_params.h, written
 * by the test; tests/mcu/test_cortexm.py computes the same in numpy. */

#include <stdint.h>

#include "fc_params.h"

int fc_invoke(const int8_t *input, int8_t *output, uint8_t *arena);

static int32_t high_mul(int32_t a, int32_t b)
{
    int64_t ab = (int64_t)a * (int64_t)b;
    int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

static int32_t rounding_shift(int32_t x, int shift)
{
    int32_t mask = (int32_t)((1u << shift) - 1u);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> shift) + (remainder > threshold ? 1 : 0);
}

int fc_invoke(const int8_t *input, int8_t *output, uint8_t *arena)
{
    int o;
    int i;
    int32_t *acc = (int32_t *)(void *)arena; /* the accumulators live in the caller's arena */
    for (o = 0; o < FC_OUT; o++) {
        acc[o] = fc_bias[o];
        for (i = 0; i < FC_IN; i++) {
            acc[o] += ((int32_t)input[i] - FC_INPUT_ZP) * (int32_t)fc_weights[o][i];
        }
    }
    for (o = 0; o < FC_OUT; o++) {
        int32_t v = rounding_shift(high_mul(acc[o], FC_MULTIPLIER), FC_SHIFT) + FC_OUTPUT_ZP;
        output[o] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    }
    return 0;
}
