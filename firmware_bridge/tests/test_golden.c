/* test_golden.c: the C library against the golden frames of WIRE.md (firmware_bridge/tests/golden).
 *
 * Every message is built here from the same values as tests/bridge/bridge_golden.py and must encode to the
 * golden file's bytes; every golden file must decode and re-encode to itself; stream.bin must give the
 * frames and drop counts the Python decoder gives. Usage: test_golden GOLDEN_DIR
 */
#include <string.h>

#include "check.h"
#include "eob_frame.h"
#include "eob_msg.h"
#include "eob_sha256.h"

static const char *golden_dir;
static uint8_t image_sha[32];
static uint8_t chunk_data[256];
static uint8_t infer_input[64];
static const uint8_t infer_output[10] = {0x80, 0x81, 0x00, 0x7F, 0x10, 0x00, 0x00, 0xFF, 0x01, 0x02};
static const uint8_t ping_data[5] = {0x00, 0x01, 0x02, 0x00, 0xff};

typedef struct {
  const char *name;
  uint16_t seq;
  eob_msg msg;
} golden;

static eob_bytes bytes_of(const uint8_t *p, size_t n) {
  eob_bytes b;
  b.data = p;
  b.len = (uint16_t)n;
  return b;
}

static eob_tensor tensor_of(uint8_t rank, const uint16_t *dims, float scale, int32_t zp) {
  eob_tensor t;
  memset(&t, 0, sizeof t);
  t.dtype = EOB_INT8;
  t.rank = rank;
  memcpy(t.dims, dims, rank * sizeof *dims);
  t.scale = scale;
  t.zero_point = zp;
  return t;
}

static size_t build(golden *g) {
  static const uint16_t in_dims[4] = {1, 8, 8, 1}, out_dims[2] = {1, 10};
  size_t n = 0, i;
  eob_msg *m;
  for (i = 0; i < 64; ++i) infer_input[i] = (uint8_t)(i < 32 ? 224 + i : i - 32);
  for (i = 0; i < 256; ++i) chunk_data[i] = (uint8_t)((i * 7) & 0xFF);
  eob_sha256_of((const uint8_t *)"edgeops golden image", 20, image_sha);
  memset(g, 0, 20 * sizeof *g);
#define NEXT(nm, sq, ty) (g[n].name = (nm), g[n].seq = (sq), g[n].msg.type = (ty), &g[n++].msg)
  NEXT("hello_req", 1, EOB_HELLO_REQ);
  m = NEXT("ping", 2, EOB_PING);
  m->u.ping.nonce = 0xDEADBEEFu;
  m->u.ping.data = bytes_of(ping_data, 5);
  m = NEXT("pong", 2, EOB_PONG);
  m->u.ping.nonce = 0xDEADBEEFu;
  m->u.ping.data = bytes_of(ping_data, 5);
  m = NEXT("infer_req", 3, EOB_INFER_REQ);
  m->u.infer_req.input = bytes_of(infer_input, 64);
  m = NEXT("infer_resp", 3, EOB_INFER_RESP);
  m->u.infer_resp.status = EOB_OK;
  m->u.infer_resp.latency_us = 1234;
  m->u.infer_resp.output = bytes_of(infer_output, 10);
  m = NEXT("model_offer", 4, EOB_MODEL_OFFER);
  m->u.offer.image_size = 1000;
  m->u.offer.chunk_size = 256;
  m->u.offer.format = 1;
  memcpy(m->u.offer.sha256, image_sha, 32);
  m->u.offer.name = eob_str_of("digits_cnn");
  m->u.offer.version = eob_str_of("1.2.0");
  m = NEXT("model_chunk", 5, EOB_MODEL_CHUNK);
  m->u.chunk.tag = eob_transfer_tag(image_sha);
  m->u.chunk.index = 2;
  m->u.chunk.crc32 = eob_crc32(chunk_data, 256);
  m->u.chunk.data = bytes_of(chunk_data, 256);
  m = NEXT("model_commit", 6, EOB_MODEL_COMMIT);
  memcpy(m->u.commit.sha256, image_sha, 32);
  NEXT("model_status_req", 7, EOB_MODEL_STATUS_REQ);
  m = NEXT("model_status", 7, EOB_MODEL_STATUS);
  m->u.status.boot_state = EOB_BOOT_CONFIRMED;
  m->u.status.running_slot = 0;
  m->u.status.confirmed_slot = 0;
  m->u.status.trial_slot = EOB_SLOT_NONE;
  m->u.status.transfer = EOB_TRANSFER_RECEIVING;
  m->u.status.last_error = EOB_ERR_CHUNK_CRC;
  memcpy(m->u.status.sha256, image_sha, 32);
  m->u.status.image_size = 1000;
  m->u.status.chunk_size = 256;
  m->u.status.chunks_total = 4;
  m->u.status.chunks_missing = 3;
  m->u.status.n_ranges = 2;
  m->u.status.missing[0].first = 0;
  m->u.status.missing[0].count = 2;
  m->u.status.missing[1].first = 3;
  m->u.status.missing[1].count = 1;
  NEXT("telemetry_req", 8, EOB_TELEMETRY_REQ);
  m = NEXT("telemetry", 9, EOB_TELEMETRY);
  m->u.telemetry.tseq = 42;
  m->u.telemetry.uptime_ms = 0x0123456789ABull;
  m->u.telemetry.inferences = 100000;
  m->u.telemetry.errors = 3;
  m->u.telemetry.latency_count = 50;
  m->u.telemetry.latency_min_us = 810;
  m->u.telemetry.latency_mean_us = 905;
  m->u.telemetry.latency_p50_us = 880;
  m->u.telemetry.latency_p90_us = 990;
  m->u.telemetry.latency_p99_us = 1500;
  m->u.telemetry.latency_max_us = 2210;
  m->u.telemetry.ram_free = 53248;
  m->u.telemetry.temperature_centi = -512;
  m->u.telemetry.rx_frames = 77;
  m->u.telemetry.rx_dropped = 2;
  m->u.telemetry.tx_dropped = 0;
  m->u.telemetry.running_slot = 1;
  m->u.telemetry.boot_state = EOB_BOOT_TESTING;
  m = NEXT("telemetry_unknown", 10, EOB_TELEMETRY);
  m->u.telemetry.ram_free = EOB_RAM_UNKNOWN;
  m->u.telemetry.temperature_centi = EOB_TEMPERATURE_UNKNOWN;
  m->u.telemetry.running_slot = EOB_SLOT_NONE;
  m->u.telemetry.boot_state = EOB_BOOT_CONFIRMED;
  m = NEXT("event", 11, EOB_EVENT);
  m->u.event.level = EOB_WARNING;
  m->u.event.code = 0x0102;
  m->u.event.uptime_ms = 5000;
  m->u.event.text = eob_str_of("flash write retried: \xc3\xbc");
  NEXT("reset", 12, EOB_RESET);
  m = NEXT("ack", 5, EOB_ACK);
  m->u.ack.request = EOB_MODEL_CHUNK;
  m->u.ack.value = 3;
  m = NEXT("nack", 0xFFFF, EOB_NACK);
  m->u.nack.request = EOB_MODEL_COMMIT;
  m->u.nack.error = EOB_ERR_HASH;
  m->u.nack.detail = eob_str_of("sha256 mismatch");
  m = NEXT("hello", 0, EOB_HELLO);
  m->u.hello.protocol = 1;
  m->u.hello.capabilities = 0x0B;
  m->u.hello.max_payload = 1024;
  m->u.hello.device_id = eob_str_of("mcu-01");
  m->u.hello.firmware_version = eob_str_of("0.3.0");
  m->u.hello.model_name = eob_str_of("digits_cnn");
  m->u.hello.model_version = eob_str_of("1.0.0");
  memcpy(m->u.hello.model_sha256, image_sha, 32);
  m->u.hello.model_format = 1;
  m->u.hello.arena_bytes = 2304;
  m->u.hello.input = tensor_of(4, in_dims, 0.0625f, -128);
  m->u.hello.output = tensor_of(2, out_dims, 0.00390625f, -128);
  m->u.hello.slot_count = 2;
  m->u.hello.running_slot = 0;
  m->u.hello.boot_state = EOB_BOOT_CONFIRMED;
  m->u.hello.boot_flags = 0;
  m->u.hello.slot_size = 65536;
#undef NEXT
  return n;
}

static unsigned char *golden_file(const char *name, size_t *n) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s.bin", golden_dir, name);
  return read_file(path, n);
}

/* Decode a whole line buffer with the streaming decoder, expecting exactly one frame. */
static int decode_one(const uint8_t *line, size_t n, eob_decoder *d, eob_frame *f) {
  size_t used = 0;
  int frames = 0;
  while (used < n) {
    bool got;
    used += eob_decoder_feed(d, line + used, n - used, f, &got);
    if (got) ++frames;
  }
  return frames;
}

static void check_golden(const golden *g) {
  static uint8_t rx[EOB_RX_BUFFER_SIZE], payload[EOB_MAX_PAYLOAD], line[EOB_TX_BUFFER_SIZE];
  size_t file_n = 0, n;
  unsigned char *file = golden_file(g->name, &file_n);
  eob_decoder d;
  eob_frame f;
  eob_msg back;
  CHECK(file != NULL);
  if (file == NULL) return;
  /* our values encode to the golden bytes */
  n = eob_msg_to_line(&g->msg, g->seq, payload, sizeof payload, line, sizeof line);
  CHECK(n == file_n && memcmp(line, file, n) == 0);
  if (n != file_n || memcmp(line, file, n) != 0) fprintf(stderr, "  golden %s: C encodes %zu bytes, file has %zu\n",
                                                         g->name, n, file_n);
  /* the golden bytes decode to a frame, the frame to a message that re-encodes to the same bytes */
  CHECK(eob_decoder_init(&d, rx, sizeof rx, EOB_MAX_PAYLOAD));
  CHECK(decode_one(file, file_n, &d, &f) == 1);
  CHECK(f.version == 1 && f.type == g->msg.type && f.seq == g->seq);
  CHECK(eob_msg_decode(&f, &back) == EOB_OK);
  CHECK(back.type == g->msg.type);
  n = eob_msg_to_line(&back, f.seq, payload, sizeof payload, line, sizeof line);
  CHECK(n == file_n && memcmp(line, file, n) == 0);
  free(file);
}

static void check_fields(void) {
  /* a few decoded fields by value, beyond the byte-for-byte round trip */
  static uint8_t rx[EOB_RX_BUFFER_SIZE];
  size_t n;
  unsigned char *file = golden_file("hello", &n);
  eob_decoder d;
  eob_frame f;
  eob_msg m;
  CHECK(file != NULL);
  if (file == NULL) return;
  CHECK(eob_decoder_init(&d, rx, sizeof rx, EOB_MAX_PAYLOAD));
  CHECK(decode_one(file, n, &d, &f) == 1);
  CHECK(eob_msg_decode(&f, &m) == EOB_OK);
  CHECK(m.u.hello.device_id.len == 6 && memcmp(m.u.hello.device_id.data, "mcu-01", 6) == 0);
  CHECK(m.u.hello.input.rank == 4 && m.u.hello.input.dims[1] == 8 && m.u.hello.input.zero_point == -128);
  CHECK(m.u.hello.output.scale == 0.00390625f && m.u.hello.slot_size == 65536);
  CHECK(memcmp(m.u.hello.model_sha256, image_sha, 32) == 0);
  free(file);
  file = golden_file("telemetry", &n);
  CHECK(file != NULL);
  if (file == NULL) return;
  CHECK(decode_one(file, n, &d, &f) == 1);
  CHECK(eob_msg_decode(&f, &m) == EOB_OK);
  CHECK(m.u.telemetry.temperature_centi == -512 && m.u.telemetry.uptime_ms == 0x0123456789ABull);
  CHECK(m.u.telemetry.boot_state == EOB_BOOT_TESTING);
  free(file);
}

static void check_stream(void) {
  static uint8_t rx[EOB_RX_BUFFER_SIZE];
  char path[512];
  size_t n, used = 0, i;
  unsigned char *data;
  eob_decoder d, d1;
  eob_frame f, frames[4];
  int count = 0, count1 = 0;
  snprintf(path, sizeof path, "%s/stream.bin", golden_dir);
  data = read_file(path, &n);
  CHECK(data != NULL);
  if (data == NULL) return;
  CHECK(eob_decoder_init(&d, rx, sizeof rx, EOB_MAX_PAYLOAD));
  while (used < n) {
    bool got;
    used += eob_decoder_feed(&d, data + used, n - used, &f, &got);
    if (got && count < 4) frames[count++] = f;
    else if (got) ++count;
  }
  CHECK(count == 2);
  CHECK(count >= 2 && frames[0].type == EOB_PING && frames[0].seq == 2);
  CHECK(count >= 2 && frames[1].type == EOB_PONG && frames[1].seq == 2);
  CHECK(d.frames == 2 && d.bad_cobs == 1 && d.bad_crc == 1 && d.oversize == 1);
  CHECK(eob_decoder_dropped(&d) == 3);
  /* byte by byte gives the same */
  CHECK(eob_decoder_init(&d1, rx, sizeof rx, EOB_MAX_PAYLOAD));
  for (i = 0; i < n; ++i)
    if (eob_decoder_push(&d1, data[i], &f)) ++count1;
  CHECK(count1 == 2 && d1.bad_cobs == 1 && d1.bad_crc == 1 && d1.oversize == 1);
  free(data);
}

static void check_primitives(void) {
  static const uint8_t abc_sha[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                      0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                      0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
  static const uint8_t empty_sha[4] = {0xe3, 0xb0, 0xc4, 0x42};
  static const uint8_t million_a_sha[4] = {0xcd, 0xc7, 0x6e, 0x5c};
  uint8_t digest[32], buf[1000], enc[1100], dec[1100];
  eob_sha256 s;
  size_t i, n, m;
  CHECK(eob_crc32((const uint8_t *)"123456789", 9) == 0xCBF43926u);
  CHECK(eob_crc32_update(eob_crc32((const uint8_t *)"1234", 4), (const uint8_t *)"56789", 5) == 0xCBF43926u);
  eob_sha256_of((const uint8_t *)"abc", 3, digest);
  CHECK(memcmp(digest, abc_sha, 32) == 0);
  eob_sha256_of(NULL, 0, digest);
  CHECK(memcmp(digest, empty_sha, 4) == 0);
  memset(buf, 'a', sizeof buf);
  eob_sha256_init(&s);
  for (i = 0; i < 1000; ++i) eob_sha256_update(&s, buf, 1000);
  eob_sha256_final(&s, digest);
  CHECK(memcmp(digest, million_a_sha, 4) == 0);
  /* COBS at block boundaries, and in place */
  for (n = 0; n < sizeof buf; n += (n < 520 ? 1 : 97)) {
    for (i = 0; i < n; ++i) buf[i] = (uint8_t)(i % 300 == 7 ? 0 : 1 + i % 251);
    m = eob_cobs_encode(buf, n, enc, sizeof enc);
    CHECK(m >= n + 1 && m <= n + n / 254 + 1 && memchr(enc, 0, m) == NULL);
    CHECK(eob_cobs_decode(enc, m, dec, sizeof dec, &i) && i == n && memcmp(dec, buf, n) == 0);
    CHECK(eob_cobs_decode(enc, m, enc, sizeof enc, &i) && i == n && memcmp(enc, buf, n) == 0);
  }
  memset(buf, 1, 254);
  CHECK(eob_cobs_encode(buf, 254, enc, sizeof enc) == 255 && enc[0] == 0xFF);
  CHECK(eob_cobs_encode(buf, 254, enc, 254) == 0); /* too small */
  enc[0] = 5, enc[1] = 1;
  CHECK(!eob_cobs_decode(enc, 2, dec, sizeof dec, &i)); /* runs past the end */
}

static void check_refusals(void) {
  uint8_t payload[EOB_MAX_PAYLOAD + 8], line[EOB_TX_BUFFER_SIZE + 8];
  static uint8_t big[EOB_MAX_PAYLOAD];
  eob_msg m;
  eob_frame f;
  size_t n;
  memset(&m, 0, sizeof m);
  m.type = EOB_INFER_REQ;
  m.u.infer_req.input = bytes_of(big, EOB_MAX_PAYLOAD - 6); /* header 4 + length 2: exactly the maximum */
  CHECK(eob_msg_encode(&m, 1, payload, sizeof payload, &n) && n == EOB_MAX_PAYLOAD);
  CHECK(eob_frame_encode(payload, n, line, sizeof line) > 0);
  m.u.infer_req.input.len += 1;
  CHECK(!eob_msg_encode(&m, 1, payload, sizeof payload, &n));
  m.type = 0x7E;
  CHECK(!eob_msg_encode(&m, 1, payload, sizeof payload, &n));
  m.type = EOB_HELLO;
  m.u.hello.input.rank = 5;
  CHECK(!eob_msg_encode(&m, 1, payload, sizeof payload, &n));
  /* decode: version, type, short and long bodies */
  f.version = 2, f.type = EOB_PING, f.seq = 1, f.body = payload, f.body_len = 6;
  memset(payload, 0, 8);
  CHECK(eob_msg_decode(&f, &m) == EOB_ERR_VERSION);
  f.version = 1;
  CHECK(eob_msg_decode(&f, &m) == EOB_OK);
  f.body_len = 5;
  CHECK(eob_msg_decode(&f, &m) == EOB_ERR_MALFORMED);
  f.body_len = 7;
  CHECK(eob_msg_decode(&f, &m) == EOB_ERR_MALFORMED);
  f.type = 0x7E;
  CHECK(eob_msg_decode(&f, &m) == EOB_ERR_TYPE);
  f.type = EOB_MODEL_STATUS, f.body_len = 55; /* 54 fixed bytes, then n_ranges */
  memset(payload, 0, 55);
  CHECK(eob_msg_decode(&f, &m) == EOB_OK);
  payload[54] = EOB_STATUS_MAX_RANGES + 1;
  CHECK(eob_msg_decode(&f, &m) == EOB_ERR_MALFORMED);
}

int main(int argc, char **argv) {
  golden g[20];
  size_t n, i;
  if (argc != 2) {
    fprintf(stderr, "usage: %s GOLDEN_DIR\n", argv[0]);
    return 2;
  }
  golden_dir = argv[1];
  n = build(g);
  CHECK(n == 18);
  for (i = 0; i < n; ++i) check_golden(&g[i]);
  check_fields();
  check_stream();
  check_primitives();
  check_refusals();
  return check_report("test_golden");
}
