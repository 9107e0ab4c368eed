/* fuzz_stdin.c: the frame decoder, the message parser and the request handling, fed whatever comes in.
 *
 * Reads all of stdin (or, built with -DEOB_LIBFUZZER, takes libFuzzer's input) and pushes it through an
 * eob_link over a memory HAL: every frame that decodes is re-encoded and must give the same payload back,
 * every request is answered (PING, and the model update through eob_slots on a simulated flash), every
 * reply must decode. Built with -fsanitize=address,undefined, so an out-of-bounds access or undefined
 * behaviour ends the run; a broken property calls abort(). Prints one line of counts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eob_frame.h"
#include "eob_link.h"
#include "eob_msg.h"
#include "eob_slots.h"
#include "flashsim.h"
#include "memhal.h"

#define FUZZ_MAX_INPUT (1u << 20)

typedef struct {
  unsigned long frames, decoded, requests, rejected, replies, dropped;
} counts;

static void require(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "fuzz_stdin: property broken: %s\n", what);
    abort();
  }
}

/* The frame decoder alone: every good frame's message re-encodes to the same payload. */
static void frames_round_trip(const uint8_t *data, size_t n, counts *c) {
  static uint8_t rx[EOB_RX_BUFFER_SIZE], payload[EOB_MAX_PAYLOAD], line[EOB_TX_BUFFER_SIZE];
  eob_decoder d;
  eob_frame f;
  eob_msg m;
  size_t used = 0, len;
  require(eob_decoder_init(&d, rx, sizeof rx, EOB_MAX_PAYLOAD), "decoder init");
  while (used < n) {
    bool got;
    used += eob_decoder_feed(&d, data + used, n - used, &f, &got);
    if (!got) continue;
    ++c->frames;
    require(f.body_len + EOB_HEADER_SIZE <= EOB_MAX_PAYLOAD, "frame within the maximum payload");
    if (eob_msg_decode(&f, &m) != EOB_OK) continue;
    ++c->decoded;
    require(eob_msg_encode(&m, f.seq, payload, sizeof payload, &len), "a decoded message encodes");
    require(len == f.body_len + EOB_HEADER_SIZE && memcmp(payload + EOB_HEADER_SIZE, f.body, f.body_len) == 0 &&
                payload[1] == f.type,
            "decode then encode gives the same payload");
    require(eob_frame_encode(payload, len, line, sizeof line) > 0, "the payload frames");
  }
  c->dropped += eob_decoder_dropped(&d);
  require(d.frames + eob_decoder_dropped(&d) <= n, "no more frames than delimiters");
}

/* One HAL context for both halves: the serial line in memory and the simulated flash. */
typedef struct {
  memhal mh;
  flashsim flash;
} board;

static size_t b_write(void *ctx, const uint8_t *p, size_t n) { return memhal_write(&((board *)ctx)->mh, p, n); }
static size_t b_read(void *ctx, uint8_t *p, size_t n) { return memhal_read(&((board *)ctx)->mh, p, n); }
static uint32_t b_micros(void *ctx) { return memhal_micros(&((board *)ctx)->mh); }
static bool b_fread(void *ctx, uint8_t r, uint32_t off, uint8_t *p, uint32_t n) {
  return flashsim_read(&((board *)ctx)->flash, r, off, p, n);
}
static bool b_ferase(void *ctx, uint8_t r, uint32_t off, uint32_t n) {
  return flashsim_erase(&((board *)ctx)->flash, r, off, n);
}
static bool b_fwrite(void *ctx, uint8_t r, uint32_t off, const uint8_t *p, uint32_t n) {
  return flashsim_write(&((board *)ctx)->flash, r, off, p, n);
}

/* The device side: poll, answer, and check every reply decodes. */
static void device_side(const uint8_t *data, size_t n, counts *c) {
  static eob_link_buffers bufs;
  static uint8_t out[1u << 16];
  static uint8_t rx[EOB_RX_BUFFER_SIZE];
  const eob_flash_geometry geo = {256, 4, 4096, 512};
  static board b;
  eob_hal hal = {NULL, b_write, b_read, b_micros, b_fread, b_ferase, b_fwrite};
  eob_link link;
  eob_slots slots;
  eob_msg m;
  eob_decoder d;
  eob_frame f;
  uint16_t seq;
  size_t used = 0;
  memset(&b.mh, 0, sizeof b.mh);
  b.mh.in = data, b.mh.in_len = n, b.mh.out = out, b.mh.out_cap = sizeof out;
  flashsim_init(&b.flash, 512, 4096, 256, 4);
  hal.ctx = &b;
  require(eob_link_init(&link, &hal, &bufs), "link init");
  require(eob_slots_init(&slots, &hal, &geo), "slots init");
  require(eob_slots_boot(&slots) == EOB_OK, "first boot");
  for (;;) {
    if (!eob_link_poll(&link, &m, &seq)) break;
    ++c->requests;
    if (eob_link_handle_ping(&link, &m, seq) || eob_link_handle_model(&link, &slots, &m, seq)) continue;
    if (m.type == EOB_RESET) {
      require(eob_slots_boot(&slots) == EOB_OK, "boot after RESET");
      continue;
    }
    (void)eob_link_ack(&link, m.type, seq, 0);
  }
  c->rejected += link.rx_rejected;
  require(b.flash.violations == 0, "flash written by the rules");
  /* every reply is a good frame with a message that decodes */
  require(eob_decoder_init(&d, rx, sizeof rx, EOB_MAX_PAYLOAD), "decoder init");
  while (used < b.mh.out_len) {
    bool got;
    used += eob_decoder_feed(&d, out + used, b.mh.out_len - used, &f, &got);
    if (got) {
      require(eob_msg_decode(&f, &m) == EOB_OK, "replies decode");
      ++c->replies;
    }
  }
  require(eob_decoder_dropped(&d) == 0, "replies are good frames");
  flashsim_free(&b.flash);
}

static void run(const uint8_t *data, size_t n, counts *c) {
  frames_round_trip(data, n, c);
  device_side(data, n, c);
}

#ifdef EOB_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  counts c;
  memset(&c, 0, sizeof c);
  run(data, n, &c);
  return 0;
}
#else
int main(void) {
  static uint8_t input[FUZZ_MAX_INPUT];
  size_t n = fread(input, 1, sizeof input, stdin);
  counts c;
  memset(&c, 0, sizeof c);
  run(input, n, &c);
  printf("bytes=%lu frames=%lu decoded=%lu dropped=%lu requests=%lu rejected=%lu replies=%lu\n", (unsigned long)n,
         c.frames, c.decoded, c.dropped, c.requests, c.rejected, c.replies);
  return 0;
}
#endif
