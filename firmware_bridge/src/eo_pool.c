/* eo_pool.c: AVERAGE_POOL_2D and MAX_POOL_2D as TFLite Micro's int8 reference kernels. */
#include "edgeops_kernels.h"

static int32_t max_i(int32_t a, int32_t b) { return a > b ? a : b; }
static int32_t min_i(int32_t a, int32_t b) { return a < b ? a : b; }

void eo_avg_pool_s8(const eo_pool_params *p, const int8_t *input, int8_t *output) {
  int32_t b, oy, ox, c, fy, fx;
  for (b = 0; b < p->batches; ++b) {
    for (oy = 0; oy < p->out_h; ++oy) {
      const int32_t y0 = oy * p->stride_h - p->pad_h;
      const int32_t fy0 = max_i(0, -y0), fy1 = min_i(p->k_h, p->in_h - y0);
      for (ox = 0; ox < p->out_w; ++ox) {
        const int32_t x0 = ox * p->stride_w - p->pad_w;
        const int32_t fx0 = max_i(0, -x0), fx1 = min_i(p->k_w, p->in_w - x0);
        for (c = 0; c < p->channels; ++c) {
          int32_t acc = 0, count = 0;
          for (fy = fy0; fy < fy1; ++fy) {
            for (fx = fx0; fx < fx1; ++fx) {
              acc += input[((b * p->in_h + y0 + fy) * p->in_w + x0 + fx) * p->channels + c];
              ++count;
            }
          }
          if (count == 0) count = 1; /* TFLite Micro fails the invoke here; a window always overlaps in practice */
          acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
          acc = min_i(max_i(acc, p->act_min), p->act_max);
          output[((b * p->out_h + oy) * p->out_w + ox) * p->channels + c] = (int8_t)acc;
        }
      }
    }
  }
}

void eo_max_pool_s8(const eo_pool_params *p, const int8_t *input, int8_t *output) {
  int32_t b, oy, ox, c, fy, fx;
  for (b = 0; b < p->batches; ++b) {
    for (oy = 0; oy < p->out_h; ++oy) {
      const int32_t y0 = oy * p->stride_h - p->pad_h;
      const int32_t fy0 = max_i(0, -y0), fy1 = min_i(p->k_h, p->in_h - y0);
      for (ox = 0; ox < p->out_w; ++ox) {
        const int32_t x0 = ox * p->stride_w - p->pad_w;
        const int32_t fx0 = max_i(0, -x0), fx1 = min_i(p->k_w, p->in_w - x0);
        for (c = 0; c < p->channels; ++c) {
          int32_t m = INT8_MIN;
          for (fy = fy0; fy < fy1; ++fy) {
            for (fx = fx0; fx < fx1; ++fx) {
              m = max_i(m, input[((b * p->in_h + y0 + fy) * p->in_w + x0 + fx) * p->channels + c]);
            }
          }
          m = min_i(max_i(m, p->act_min), p->act_max);
          output[((b * p->out_h + oy) * p->out_w + ox) * p->channels + c] = (int8_t)m;
        }
      }
    }
  }
}
