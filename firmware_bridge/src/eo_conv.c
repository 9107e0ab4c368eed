/* eo_conv.c: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED as TFLite Micro's int8 reference kernels
 * (reference_integer_ops::ConvPerChannel, DepthwiseConvPerChannel, FullyConnected). */
#include "edgeops_kernels.h"

static int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

void eo_conv_s8(const eo_conv_params *p, const int8_t *input, const int8_t *filter, const int32_t *bias,
                int8_t *output) {
  const int32_t groups = p->in_c / p->filter_in_c;
  const int32_t per_group = p->out_c / groups;
  int32_t b, oy, ox, oc, ky, kx, ic;
  for (b = 0; b < p->batches; ++b) {
    for (oy = 0; oy < p->out_h; ++oy) {
      const int32_t y0 = oy * p->stride_h - p->pad_h;
      for (ox = 0; ox < p->out_w; ++ox) {
        const int32_t x0 = ox * p->stride_w - p->pad_w;
        for (oc = 0; oc < p->out_c; ++oc) {
          const int32_t group = oc / per_group;
          int32_t acc = 0;
          for (ky = 0; ky < p->k_h; ++ky) {
            const int32_t iy = y0 + p->dil_h * ky;
            if (iy < 0 || iy >= p->in_h) continue;
            for (kx = 0; kx < p->k_w; ++kx) {
              const int32_t ix = x0 + p->dil_w * kx;
              const int8_t *in;
              const int8_t *f;
              if (ix < 0 || ix >= p->in_w) continue;
              in = input + ((b * p->in_h + iy) * p->in_w + ix) * p->in_c + group * p->filter_in_c;
              f = filter + ((oc * p->k_h + ky) * p->k_w + kx) * p->filter_in_c;
              for (ic = 0; ic < p->filter_in_c; ++ic) acc += f[ic] * (in[ic] + p->input_offset);
            }
          }
          if (bias) acc += bias[oc];
          acc = eo_mbqm(acc, p->multiplier[oc], p->shift[oc]) + p->output_offset;
          output[((b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc] = (int8_t)clamp(acc, p->act_min, p->act_max);
        }
      }
    }
  }
}

void eo_depthwise_conv_s8(const eo_conv_params *p, const int8_t *input, const int8_t *filter,
                          const int32_t *bias, int8_t *output) {
  int32_t b, oy, ox, ic, m, ky, kx;
  for (b = 0; b < p->batches; ++b) {
    for (oy = 0; oy < p->out_h; ++oy) {
      const int32_t y0 = oy * p->stride_h - p->pad_h;
      for (ox = 0; ox < p->out_w; ++ox) {
        const int32_t x0 = ox * p->stride_w - p->pad_w;
        for (ic = 0; ic < p->in_c; ++ic) {
          for (m = 0; m < p->depth_multiplier; ++m) {
            const int32_t oc = m + ic * p->depth_multiplier;
            int32_t acc = 0;
            for (ky = 0; ky < p->k_h; ++ky) {
              const int32_t iy = y0 + p->dil_h * ky;
              if (iy < 0 || iy >= p->in_h) continue;
              for (kx = 0; kx < p->k_w; ++kx) {
                const int32_t ix = x0 + p->dil_w * kx;
                if (ix < 0 || ix >= p->in_w) continue;
                acc += filter[(ky * p->k_w + kx) * p->out_c + oc] *
                       (input[((b * p->in_h + iy) * p->in_w + ix) * p->in_c + ic] + p->input_offset);
              }
            }
            if (bias) acc += bias[oc];
            acc = eo_mbqm(acc, p->multiplier[oc], p->shift[oc]) + p->output_offset;
            output[((b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc] =
                (int8_t)clamp(acc, p->act_min, p->act_max);
          }
        }
      }
    }
  }
}

void eo_fully_connected_s8(const eo_fc_params *p, const int8_t *input, const int8_t *filter, const int32_t *bias,
                           int8_t *output) {
  int32_t b, o, d;
  for (b = 0; b < p->batches; ++b) {
    const int8_t *in = input + b * p->accum_depth;
    for (o = 0; o < p->out_depth; ++o) {
      const int8_t *f = filter + o * p->accum_depth;
      const int32_t c = p->per_channel ? o : 0;
      int32_t acc = 0;
      for (d = 0; d < p->accum_depth; ++d) acc += (f[d] + p->filter_offset) * (in[d] + p->input_offset);
      if (bias) acc += bias[o];
      acc = eo_mbqm(acc, p->multiplier[c], p->shift[c]) + p->output_offset;
      output[b * p->out_depth + o] = (int8_t)clamp(acc, p->act_min, p->act_max);
    }
  }
}
