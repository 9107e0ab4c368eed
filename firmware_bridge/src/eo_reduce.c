/* eo_reduce.c: MEAN and SOFTMAX as TFLite Micro's int8 reference kernels (reference_ops::QuantizedMeanOrSum; reference_ops::Softmax's gemmlowp fixed-point path). */
#include "edgeops_kernels.h"

static int32_t mean_sum(const eo_mean_params *p, const int8_t *base) {
  int32_t idx[EO_MAX_DIMS] = {0};
  int32_t off = 0, sum = 0, i, d;
  for (i = 0; i < p->count; ++i) {
    sum += base[off];
    for (d = p->n_reduced - 1; d >= 0; --d) {
      off += p->reduced_strides[d];
      if (++idx[d] < p->reduced_dims[d]) break;
      off -= p->reduced_strides[d] * idx[d];
      idx[d] = 0;
    }
  }
  return sum;
}

void eo_mean_s8(const eo_mean_params *p, const int8_t *input, int8_t *output) {
  int32_t idx[EO_MAX_DIMS] = {0};
  int32_t off = 0, n_out = 1, i, d;
  for (d = 0; d < p->n_kept; ++d) n_out *= p->kept_dims[d];
  for (i = 0; i < n_out; ++i) {
    const int32_t sum = mean_sum(p, input + off) - p->count * p->input_zero_point;
    const int32_t out = eo_mbqm(sum, p->multiplier, p->shift) + p->output_zero_point;
    output[i] = (int8_t)(out < -128 ? -128 : (out > 127 ? 127 : out));
    for (d = p->n_kept - 1; d >= 0; --d) {
      off += p->kept_strides[d];
      if (++idx[d] < p->kept_dims[d]) break;
      off -= p->kept_strides[d] * idx[d];
      idx[d] = 0;
    }
  }
}

static int32_t sat_shift_left(int32_t x, int e) {
  const int32_t threshold = (int32_t)(((int64_t)1 << (31 - e)) - 1);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return (int32_t)((uint32_t)x << e);
}

/* gemmlowp::one_over_one_plus_x_for_x_in_0_1 on Q0.31 raw values. */
static int32_t one_over_one_plus_x(int32_t a) {
  const int64_t sum = (int64_t)a + INT32_MAX;
  const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  int32_t x = 1515870810 + eo_srdhm(half_denominator, -1010580540);
  int i;
  for (i = 0; i < 3; ++i) {
    const int32_t one_minus = (1 << 29) - eo_srdhm(half_denominator, x);
    x = x + sat_shift_left(eo_srdhm(x, one_minus), 2);
  }
  return sat_shift_left(x, 1);
}

static int count_leading_zeros(uint32_t x) {
  int n = 0;
  if (x == 0) return 32;
  while (!(x & 0x80000000u)) {
    x <<= 1;
    ++n;
  }
  return n;
}

void eo_softmax_s8(const eo_softmax_params *p, const int8_t *input, int8_t *output) {
  int32_t i, c;
  for (i = 0; i < p->outer; ++i) {
    const int8_t *x = input + i * p->depth;
    int8_t *y = output + i * p->depth;
    int32_t max_in_row = INT8_MIN, sum = 0, scale;
    int headroom, bits_over_unit;
    for (c = 0; c < p->depth; ++c) max_in_row = x[c] > max_in_row ? x[c] : max_in_row;
    for (c = 0; c < p->depth; ++c) {
      const int32_t diff = x[c] - max_in_row;
      if (diff >= p->diff_min) sum += eo_rdbpot(p->exp_table[-diff], 12);
    }
    headroom = count_leading_zeros((uint32_t)sum);
    bits_over_unit = 12 - headroom;
    scale = one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - 0x80000000u));
    for (c = 0; c < p->depth; ++c) {
      const int32_t diff = x[c] - max_in_row;
      if (diff >= p->diff_min) {
        int32_t out = eo_rdbpot(eo_srdhm(scale, p->exp_table[-diff]), bits_over_unit + 31 - 8) - 128;
        y[c] = (int8_t)(out < -128 ? -128 : (out > 127 ? 127 : out));
      } else {
        y[c] = INT8_MIN;
      }
    }
  }
}
