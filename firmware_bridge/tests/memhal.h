/* memhal.h: a serial HAL over memory for the host tests: reads come from a byte string, writes go to a
 * buffer (a write that does not fit is refused whole), and the clock advances 100 us a call. */
#ifndef EOB_TEST_MEMHAL_H_
#define EOB_TEST_MEMHAL_H_

#include <string.h>

#include "check.h"
#include "eob_hal.h"

typedef struct {
  const uint8_t *in;
  size_t in_len, in_pos;
  uint8_t *out;
  size_t out_cap, out_len;
  uint32_t now;
} memhal;

TEST_HELPER static size_t memhal_write(void *ctx, const uint8_t *data, size_t n) {
  memhal *m = (memhal *)ctx;
  if (n > m->out_cap - m->out_len) return 0;
  memcpy(m->out + m->out_len, data, n);
  m->out_len += n;
  return n;
}

TEST_HELPER static size_t memhal_read(void *ctx, uint8_t *data, size_t n) {
  memhal *m = (memhal *)ctx;
  size_t k = m->in_len - m->in_pos < n ? m->in_len - m->in_pos : n;
  memcpy(data, m->in + m->in_pos, k);
  m->in_pos += k;
  return k;
}

TEST_HELPER static uint32_t memhal_micros(void *ctx) {
  memhal *m = (memhal *)ctx;
  m->now += 100u;
  return m->now;
}

TEST_HELPER static void memhal_serial(eob_hal *h, memhal *m) {
  h->ctx = m;
  h->write = memhal_write;
  h->read = memhal_read;
  h->micros = memhal_micros;
}

#endif
