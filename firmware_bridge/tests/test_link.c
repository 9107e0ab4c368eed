/* test_link.c: eob_link over a memory HAL: requests in, replies out, bad frames NACKed, a model update
 * end to end through eob_link_handle_model. Usage: test_link GOLDEN_DIR */
#include <string.h>

#include "check.h"
#include "eob_link.h"
#include "eob_sha256.h"
#include "flashsim.h"
#include "memhal.h"

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

static board b;
static eob_link_buffers bufs;
static uint8_t in[1 << 16], out[1 << 16];
static size_t in_len;

/* Queue a request on the line, as the gateway would send it. */
static void host_sends(const eob_msg *m, uint16_t seq) {
  uint8_t payload[EOB_MAX_PAYLOAD];
  size_t n = eob_msg_to_line(m, seq, payload, sizeof payload, in + in_len, sizeof in - in_len);
  CHECK(n > 0);
  in_len += n;
  b.mh.in_len = in_len;
}

/* The device's main loop until the line is quiet: PING and the model update answered by the library. */
static int device_runs(eob_link *l, eob_slots *s) {
  eob_msg m;
  uint16_t seq;
  int requests = 0;
  while (eob_link_poll(l, &m, &seq)) {
    ++requests;
    if (eob_link_handle_ping(l, &m, seq) || eob_link_handle_model(l, s, &m, seq)) continue;
    CHECK(eob_link_nack(l, m.type, seq, EOB_ERR_UNSUPPORTED, "not in this test"));
  }
  return requests;
}

/* The replies written since *pos, decoded. */
static int replies(size_t *pos, eob_msg *msgs, uint16_t *seqs, int max) {
  static uint8_t rx[EOB_RX_BUFFER_SIZE];
  static eob_decoder d;
  static bool ready = false;
  eob_frame f;
  int n = 0;
  if (!ready) ready = eob_decoder_init(&d, rx, sizeof rx, EOB_MAX_PAYLOAD);
  while (*pos < b.mh.out_len) {
    bool got;
    *pos += eob_decoder_feed(&d, out + *pos, b.mh.out_len - *pos, &f, &got);
    if (got && n < max) {
      CHECK(eob_msg_decode(&f, &msgs[n]) == EOB_OK);
      seqs[n++] = f.seq;
    }
  }
  return n;
}

int main(int argc, char **argv) {
  const eob_hal hal = {&b, b_write, b_read, b_micros, b_fread, b_ferase, b_fwrite};
  const eob_flash_geometry geo = {256, 4, 8192, 512};
  eob_link link;
  eob_slots slots;
  eob_msg m, got[64];
  uint16_t seqs[64];
  size_t pos = 0, n, golden_n;
  char path[512];
  unsigned char *golden;
  static uint8_t image[3000];
  uint8_t sha[32];
  uint32_t i;
  int k;
  if (argc != 2) return 2;
  memset(&b, 0, sizeof b);
  b.mh.in = in, b.mh.out = out, b.mh.out_cap = sizeof out;
  flashsim_init(&b.flash, 512, 8192, 256, 4);
  CHECK(eob_link_init(&link, &hal, &bufs));
  CHECK(eob_slots_init(&slots, &hal, &geo) && eob_slots_boot(&slots) == EOB_OK);

  /* the golden PING, after line noise, is answered with exactly the golden PONG */
  snprintf(path, sizeof path, "%s/ping.bin", argv[1]);
  golden = read_file(path, &golden_n);
  CHECK(golden != NULL);
  if (golden == NULL) return check_report("test_link");
  memcpy(in, "\x00noise\xff\x00", 8);
  memcpy(in + 8, golden, golden_n);
  in_len = 8 + golden_n;
  b.mh.in_len = in_len;
  free(golden);
  CHECK(device_runs(&link, &slots) == 1);
  snprintf(path, sizeof path, "%s/pong.bin", argv[1]);
  golden = read_file(path, &golden_n);
  CHECK(golden != NULL && b.mh.out_len == golden_n && memcmp(out, golden, golden_n) == 0);
  free(golden);
  pos = b.mh.out_len;
  CHECK(eob_link_rx_frames(&link) == 1 && eob_link_rx_dropped(&link) == 1);

  /* a frame of another protocol version, and a device-to-host type, are NACKed with their seq */
  {
    uint8_t payload[8] = {2, EOB_PING, 0x34, 0x12, 0, 0, 0, 0};
    in_len += eob_frame_encode(payload, 4, in + in_len, sizeof in - in_len);
    memset(&m, 0, sizeof m);
    m.type = EOB_HELLO;
    host_sends(&m, 77);
    b.mh.in_len = in_len;
  }
  CHECK(device_runs(&link, &slots) == 0);
  CHECK(replies(&pos, got, seqs, 64) == 2);
  CHECK(got[0].type == EOB_NACK && seqs[0] == 0x1234 && got[0].u.nack.error == EOB_ERR_VERSION);
  CHECK(got[1].type == EOB_NACK && seqs[1] == 77 && got[1].u.nack.error == EOB_ERR_TYPE &&
        got[1].u.nack.request == EOB_HELLO);
  CHECK(link.rx_rejected == 2);

  /* a model update: offer, chunks of 200 bytes (one with a bad CRC), status, the rest, commit */
  for (i = 0; i < sizeof image; ++i) image[i] = (uint8_t)(i * 31 + (i >> 7));
  eob_sha256_of(image, sizeof image, sha);
  memset(&m, 0, sizeof m);
  m.type = EOB_MODEL_OFFER;
  m.u.offer.image_size = sizeof image;
  m.u.offer.chunk_size = 200;
  memcpy(m.u.offer.sha256, sha, 32);
  m.u.offer.name = eob_str_of("linked");
  m.u.offer.version = eob_str_of("2");
  host_sends(&m, 100);
  for (i = 0; i < 15; i += 2) { /* chunks 0, 2, ..., 14 */
    memset(&m, 0, sizeof m);
    m.type = EOB_MODEL_CHUNK;
    m.u.chunk.tag = eob_transfer_tag(sha);
    m.u.chunk.index = i;
    m.u.chunk.data.data = image + 200 * i;
    m.u.chunk.data.len = 200;
    m.u.chunk.crc32 = eob_crc32(image + 200 * i, 200) ^ (i == 4 ? 1u : 0u);
    host_sends(&m, (uint16_t)(101 + i));
  }
  memset(&m, 0, sizeof m);
  m.type = EOB_MODEL_STATUS_REQ;
  host_sends(&m, 200);
  CHECK(device_runs(&link, &slots) == 10);
  n = (size_t)replies(&pos, got, seqs, 64);
  CHECK(n == 10);
  CHECK(got[0].type == EOB_MODEL_STATUS && got[0].u.status.transfer == EOB_TRANSFER_RECEIVING &&
        got[0].u.status.chunks_total == 15 && seqs[0] == 100);
  CHECK(got[1].type == EOB_ACK && got[1].u.ack.value == 14 && got[2].u.ack.value == 13);
  CHECK(got[3].type == EOB_NACK && got[3].u.nack.error == EOB_ERR_CHUNK_CRC && seqs[3] == 105);
  CHECK(got[8].type == EOB_ACK && got[8].u.ack.value == 8);
  CHECK(got[9].type == EOB_MODEL_STATUS && got[9].u.status.chunks_missing == 8 && seqs[9] == 200);
  CHECK(got[9].u.status.n_ranges == 6 && got[9].u.status.missing[1].first == 3 &&
        got[9].u.status.missing[1].count == 3);
  for (k = 0; k < got[9].u.status.n_ranges; ++k) {
    uint32_t first = got[9].u.status.missing[k].first, j;
    for (j = first; j < first + got[9].u.status.missing[k].count; ++j) {
      memset(&m, 0, sizeof m);
      m.type = EOB_MODEL_CHUNK;
      m.u.chunk.tag = eob_transfer_tag(sha);
      m.u.chunk.index = j;
      m.u.chunk.data.data = image + 200 * j;
      m.u.chunk.data.len = 200;
      m.u.chunk.crc32 = eob_crc32(image + 200 * j, 200);
      host_sends(&m, (uint16_t)(300 + j));
    }
  }
  memset(&m, 0, sizeof m);
  m.type = EOB_MODEL_COMMIT;
  memcpy(m.u.commit.sha256, sha, 32);
  host_sends(&m, 400);
  CHECK(device_runs(&link, &slots) == 9);
  n = (size_t)replies(&pos, got, seqs, 64);
  CHECK(n == 9 && got[7].type == EOB_ACK && got[7].u.ack.value == 0);
  CHECK(got[8].type == EOB_MODEL_STATUS && seqs[8] == 400 && got[8].u.status.boot_state == EOB_BOOT_PENDING &&
        got[8].u.status.transfer == EOB_TRANSFER_VERIFIED && got[8].u.status.trial_slot == 0);
  CHECK(eob_slots_boot(&slots) == EOB_OK && slots.running == 0 && slots.table.state == EOB_BOOT_TESTING);

  /* without slots the model requests are refused; a full line drops the frame and counts it */
  memset(&m, 0, sizeof m);
  m.type = EOB_MODEL_STATUS_REQ;
  host_sends(&m, 500);
  while (eob_link_poll(&link, &m, seqs)) CHECK(eob_link_handle_model(&link, NULL, &m, seqs[0]));
  CHECK(replies(&pos, got, seqs, 64) == 1 && got[0].u.nack.error == EOB_ERR_UNSUPPORTED);
  b.mh.out_cap = b.mh.out_len + 5;
  memset(&m, 0, sizeof m);
  m.type = EOB_TELEMETRY;
  CHECK(!eob_link_emit(&link, &m) && link.tx_dropped == 1);
  CHECK(b.flash.violations == 0);
  flashsim_free(&b.flash);
  return check_report("test_link");
}
