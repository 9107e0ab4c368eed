/* eo_elementwise.c: ADD, MUL (with broadcasting), table lookups, TRANSPOSE, PAD, CONCATENATION and copies, as TFLite
 * Micro's int8 reference kernels compute them. */
#include "edgeops_kernels.h"

static int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

static int32_t add_one(const eo_add_params *p, int8_t a, int8_t b) {
  const int32_t x = (int32_t)((uint32_t)(p->input1_offset + a) << p->left_shift);
  const int32_t y = (int32_t)((uint32_t)(p->input2_offset + b) << p->left_shift);
  const int32_t sx = eo_mbqm(x, p->input1_multiplier, p->input1_shift);
  const int32_t sy = eo_mbqm(y, p->input2_multiplier, p->input2_shift);
  const int32_t out = eo_mbqm(sx + sy, p->output_multiplier, p->output_shift) + p->output_offset;
  return clamp(out, p->act_min, p->act_max);
}

static int32_t mul_one(const eo_mul_params *p, int8_t a, int8_t b) {
  const int32_t prod = (p->input1_offset + a) * (p->input2_offset + b);
  return clamp(p->output_offset + eo_mbqm(prod, p->output_multiplier, p->output_shift), p->act_min, p->act_max);
}

/* Walks the output in order; o1/o2 follow each input through its strides. */
#define EO_BROADCAST_LOOP(b, body)                                               \
  do {                                                                           \
    int32_t idx_[EO_MAX_DIMS] = {0};                                             \
    int32_t o1 = 0, o2 = 0, i_, d_, total_ = 1;                                  \
    for (d_ = 0; d_ < (b)->ndims; ++d_) total_ *= (b)->dims[d_];                 \
    for (i_ = 0; i_ < total_; ++i_) {                                            \
      body;                                                                      \
      for (d_ = (b)->ndims - 1; d_ >= 0; --d_) {                                 \
        ++idx_[d_];                                                              \
        o1 += (b)->strides1[d_];                                                 \
        o2 += (b)->strides2[d_];                                                 \
        if (idx_[d_] < (b)->dims[d_]) break;                                     \
        o1 -= (b)->strides1[d_] * idx_[d_];                                      \
        o2 -= (b)->strides2[d_] * idx_[d_];                                      \
        idx_[d_] = 0;                                                            \
      }                                                                          \
    }                                                                            \
  } while (0)

void eo_add_s8(const eo_add_params *p, const eo_broadcast *b, const int8_t *in1, const int8_t *in2, int8_t *out) {
  EO_BROADCAST_LOOP(b, out[i_] = (int8_t)add_one(p, in1[o1], in2[o2]));
}

void eo_mul_s8(const eo_mul_params *p, const eo_broadcast *b, const int8_t *in1, const int8_t *in2, int8_t *out) {
  EO_BROADCAST_LOOP(b, out[i_] = (int8_t)mul_one(p, in1[o1], in2[o2]));
}

void eo_lut_s8(const int8_t *table, int32_t size, const int8_t *input, int8_t *output) {
  int32_t i;
  for (i = 0; i < size; ++i) output[i] = table[input[i] + 128];
}

void eo_copy_s8(int32_t size, const int8_t *input, int8_t *output) {
  int32_t i;
  if (input == output) return;
  for (i = 0; i < size; ++i) output[i] = input[i];
}

void eo_concat_s8(int32_t n_inputs, const int8_t *const *inputs, const int32_t *block_sizes, int32_t outer,
                  int8_t *output) {
  int32_t o, k, i;
  for (o = 0; o < outer; ++o) {
    for (k = 0; k < n_inputs; ++k) {
      const int8_t *src = inputs[k] + o * block_sizes[k];
      for (i = 0; i < block_sizes[k]; ++i) *output++ = src[i];
    }
  }
}

void eo_transpose_s8(const eo_transpose_params *p, const int8_t *input, int8_t *output) {
  int32_t idx[EO_MAX_DIMS] = {0};
  int32_t off = 0, total = 1, i, d;
  for (d = 0; d < p->ndims; ++d) total *= p->dims[d];
  for (i = 0; i < total; ++i) {
    output[i] = input[off];
    for (d = p->ndims - 1; d >= 0; --d) {
      off += p->strides[d];
      if (++idx[d] < p->dims[d]) break;
      off -= p->strides[d] * idx[d];
      idx[d] = 0;
    }
  }
}

void eo_pad_s8(const eo_pad_params *p, const int8_t *input, int8_t *output) {
  int32_t idx[EO_MAX_DIMS] = {0};
  int32_t out_dims[EO_MAX_DIMS];
  int32_t d, i, total = 1;
  for (d = 0; d < p->ndims; ++d) {
    out_dims[d] = p->before[d] + p->in_dims[d] + p->after[d];
    total *= out_dims[d];
  }
  for (i = 0; i < total; ++i) {
    int inside = 1;
    for (d = 0; d < p->ndims; ++d) {
      if (idx[d] < p->before[d] || idx[d] >= p->before[d] + p->in_dims[d]) { inside = 0; break; }
    }
    output[i] = inside ? *input++ : p->pad_value;
    for (d = p->ndims - 1; d >= 0; --d) {
      if (++idx[d] < out_dims[d]) break;
      idx[d] = 0;
    }
  }
}
