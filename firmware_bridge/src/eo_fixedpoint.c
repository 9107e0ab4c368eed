/* eo_fixedpoint.c: the fixed-point arithmetic of TFLite's int8 kernels (common.h, gemmlowp). */
#include "edgeops_kernels.h"

int32_t eo_srdhm(int32_t a, int32_t b) {
  int64_t ab;
  int32_t nudge;
  if (a == b && a == INT32_MIN) return INT32_MAX;
  ab = (int64_t)a * (int64_t)b;
  nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

int32_t eo_rdbpot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t eo_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
  const int left_shift = shift > 0 ? (int)shift : 0;
  const int right_shift = shift > 0 ? 0 : (int)-shift;
  return eo_rdbpot(eo_srdhm((int32_t)((uint32_t)x << left_shift), multiplier), right_shift);
}
