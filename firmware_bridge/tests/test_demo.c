/* test_demo.c: the demo application (app/eob_demo) over a memory serial line and a simulated NOR flash:
 * a good image is committed, tested and confirmed; a broken one (a zeroed blob, which digits_blob_check
 * refuses before anything runs) is reverted; (test_host_device.py reverts one that fails the health check) an image for another graph is refused; and a power cut at every sampled byte of an update
 * (transfer, commit, the trial start and its confirmation) leaves a device that starts, runs a model that
 * classifies its samples, and takes the update again to the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "eob_demo.h"
#include "eob_sha256.h"
#include "flashsim.h"
#include "memhal.h"

#define ERASE 1024u
#define WRITE 4u
#define HEADER 4096u
#define SLOT (HEADER + 8192u)
#define CHUNK 512u
#define OUT_CAP (256u * 1024u)
#define IN_CAP (32u * 1024u)

typedef struct {
  memhal m;
  flashsim *f;
} rig;

static size_t r_write(void *c, const uint8_t *d, size_t n) { return memhal_write(&((rig *)c)->m, d, n); }
static size_t r_read(void *c, uint8_t *d, size_t n) { return memhal_read(&((rig *)c)->m, d, n); }
static uint32_t r_micros(void *c) { return memhal_micros(&((rig *)c)->m); }
static bool r_fread(void *c, uint8_t g, uint32_t o, uint8_t *d, uint32_t n) { return flashsim_read(((rig *)c)->f, g, o, d, n); }
static bool r_ferase(void *c, uint8_t g, uint32_t o, uint32_t n) { return flashsim_erase(((rig *)c)->f, g, o, n); }
static bool r_fwrite(void *c, uint8_t g, uint32_t o, const uint8_t *d, uint32_t n) {
  return flashsim_write(((rig *)c)->f, g, o, d, n);
}

static eob_demo demo;
static rig R;
static eob_hal hal;
static uint8_t out_buf[OUT_CAP];
static uint8_t in_buf[IN_CAP];
static const eob_flash_geometry geo = {ERASE, WRITE, SLOT, HEADER};

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* An image: header (graph hash of this firmware unless foreign) + the built-in blob, or zeros when broken. */
static void make_image(uint8_t *img, const char *version, bool broken, bool foreign) {
  static const uint8_t hash[32] = DIGITS_GRAPH_HASH_BYTES;
  memset(img, 0, EOB_DEMO_IMAGE_SIZE);
  put32(img, EOB_DEMO_IMAGE_MAGIC);
  img[4] = 1;
  img[6] = EOB_DEMO_IMAGE_HEADER;
  memcpy(img + 8, hash, 32);
  if (foreign) img[8] ^= 1;
  put32(img + 40, DIGITS_BLOB_SIZE);
  if (!broken) memcpy(img + EOB_DEMO_IMAGE_HEADER, digits_blob_words, DIGITS_BLOB_SIZE);
  put32(img + 44, eob_crc32(img + EOB_DEMO_IMAGE_HEADER, DIGITS_BLOB_SIZE));
  memcpy(img + 48, "digits", 6);
  memcpy(img + 80, version, strlen(version));
}

static size_t frame(uint8_t *at, const eob_msg *m, uint16_t seq) {
  static uint8_t payload[EOB_MAX_PAYLOAD];
  size_t n = eob_msg_to_line(m, seq, payload, sizeof payload, at, EOB_TX_BUFFER_SIZE);
  CHECK(n > 0);
  return n;
}

/* OFFER, every chunk, COMMIT as line bytes into in_buf; their length. */
static size_t update_frames(const uint8_t *img, const char *version) {
  eob_msg m;
  size_t n = 0;
  uint32_t k, chunks = (EOB_DEMO_IMAGE_SIZE + CHUNK - 1) / CHUNK;
  uint8_t sha[32];
  eob_sha256_of(img, EOB_DEMO_IMAGE_SIZE, sha);
  memset(&m, 0, sizeof m);
  m.type = EOB_MODEL_OFFER;
  m.u.offer.image_size = EOB_DEMO_IMAGE_SIZE;
  m.u.offer.chunk_size = CHUNK;
  m.u.offer.format = EOB_DEMO_IMAGE_FORMAT;
  memcpy(m.u.offer.sha256, sha, 32);
  m.u.offer.name = eob_str_of("digits");
  m.u.offer.version = eob_str_of(version);
  n += frame(in_buf + n, &m, 1);
  for (k = 0; k < chunks; ++k) {
    uint32_t len = k + 1 < chunks ? CHUNK : EOB_DEMO_IMAGE_SIZE - k * CHUNK;
    memset(&m, 0, sizeof m);
    m.type = EOB_MODEL_CHUNK;
    m.u.chunk.tag = eob_transfer_tag(sha);
    m.u.chunk.index = k;
    m.u.chunk.data.data = img + k * CHUNK;
    m.u.chunk.data.len = (uint16_t)len;
    m.u.chunk.crc32 = eob_crc32(img + k * CHUNK, len);
    n += frame(in_buf + n, &m, (uint16_t)(2 + k));
  }
  memset(&m, 0, sizeof m);
  m.type = EOB_MODEL_COMMIT;
  memcpy(m.u.commit.sha256, sha, 32);
  n += frame(in_buf + n, &m, 999);
  return n;
}

static uint32_t max_latency_us = 1000000u;

/* A start of the device on R.f with in_len bytes of requests waiting; the steps until they are consumed. */
static bool boot(size_t in_len) {
  eob_demo_config cfg;
  int steps = 0;
  memset(&cfg, 0, sizeof cfg);
  cfg.device_id = "mcu-test";
  cfg.firmware_version = "test";
  cfg.loop_ms = 0;
  cfg.telemetry_ms = 0;
  cfg.health_min_correct = 16;
  cfg.health_max_latency_us = max_latency_us;
  R.m.in = in_buf;
  R.m.in_len = in_len;
  R.m.in_pos = 0;
  R.m.out = out_buf;
  R.m.out_cap = sizeof out_buf;
  R.m.out_len = 0;
  if (!eob_demo_init(&demo, &hal, &geo, NULL, &cfg)) return false;
  while (R.m.in_pos < R.m.in_len && steps++ < 1000) (void)eob_demo_step(&demo);
  (void)eob_demo_step(&demo);
  return true;
}

/* The device's output decoded: does it hold a message of this type (and event code / reply status)? */
static bool sent(uint8_t type, uint16_t code) {
  static uint8_t rx[EOB_RX_BUFFER_SIZE];
  eob_decoder dec;
  eob_frame f;
  eob_msg m;
  size_t k;
  CHECK(eob_decoder_init(&dec, rx, sizeof rx, EOB_MAX_PAYLOAD));
  for (k = 0; k < R.m.out_len; ++k) {
    if (!eob_decoder_push(&dec, out_buf[k], &f) || eob_msg_decode(&f, &m) != EOB_OK || m.type != type) continue;
    if (type == EOB_EVENT && m.u.event.code != code) continue;
    if (type == EOB_NACK && m.u.nack.error != code) continue;
    if (type == EOB_MODEL_STATUS && m.u.status.transfer != code) continue;
    return true;
  }
  return false;
}

static uint32_t health(void) {
  uint32_t worst;
  return eob_demo_health(&demo, NULL, &worst);
}

static void test_update_commit_confirm_and_revert(void) {
  static uint8_t img[EOB_DEMO_IMAGE_SIZE];
  flashsim f;
  flashsim_init(&f, 2 * ERASE, SLOT, ERASE, WRITE);
  R.f = &f;
  CHECK(boot(0));
  CHECK(sent(EOB_HELLO, 0) && strcmp(demo.model_version, "builtin") == 0 && health() >= 18);

  make_image(img, "2.0", false, false);
  CHECK(boot(update_frames(img, "2.0")));
  CHECK(sent(EOB_MODEL_STATUS, EOB_TRANSFER_VERIFIED) && sent(EOB_EVENT, EOB_EV_IMAGE_VERIFIED));
  CHECK(demo.slots.table.state == EOB_BOOT_PENDING);
  CHECK(boot(0)); /* the start after the commit: TESTING, health check, confirmed */
  CHECK(sent(EOB_EVENT, EOB_EV_TRIAL_STARTED) && sent(EOB_EVENT, EOB_EV_CONFIRMED) && !sent(EOB_EVENT, EOB_EV_REVERTED));
  CHECK(demo.slots.table.state == EOB_BOOT_CONFIRMED && demo.slots.running != EOB_SLOT_NONE);
  CHECK(strcmp(demo.model_version, "2.0") == 0 && demo.model_blob == (const uint8_t *)demo.blob && health() >= 18);

  make_image(img, "bad", true, false); /* a zeroed blob: its SOFTMAX table would make the kernel shift by 32 */
  CHECK(boot(update_frames(img, "bad")));
  CHECK(sent(EOB_MODEL_STATUS, EOB_TRANSFER_VERIFIED));
  CHECK(boot(0));
  CHECK(sent(EOB_EVENT, EOB_EV_TRIAL_STARTED) && sent(EOB_EVENT, EOB_EV_REVERTED) && !sent(EOB_EVENT, EOB_EV_CONFIRMED));
  CHECK(strcmp(demo.model_version, "2.0") == 0 && (demo.slots.table.flags & EOB_BOOT_FLAG_REVERTED) && health() >= 18);

  make_image(img, "slow", false, false); /* right answers, but over the latency bound (the clock: 100 us a call) */
  CHECK(boot(update_frames(img, "slow")));
  CHECK(sent(EOB_MODEL_STATUS, EOB_TRANSFER_VERIFIED));
  max_latency_us = 50;
  CHECK(boot(0));
  max_latency_us = 1000000u;
  CHECK(sent(EOB_EVENT, EOB_EV_REVERTED) && strcmp(demo.model_version, "2.0") == 0);

  make_image(img, "other", false, true); /* another graph: refused at the commit */
  CHECK(boot(update_frames(img, "other")));
  CHECK(sent(EOB_NACK, EOB_ERR_UNSUPPORTED) && !sent(EOB_MODEL_STATUS, EOB_TRANSFER_VERIFIED));
  CHECK(demo.slots.table.state == EOB_BOOT_CONFIRMED && strcmp(demo.model_version, "2.0") == 0);
  CHECK(f.violations == 0);
  flashsim_free(&f);
}

/* Bytes the flash changes over: update (transfer + commit), then the trial start and its confirmation. */
static unsigned long run_update(flashsim *f, const uint8_t *img, size_t in_len) {
  R.f = f;
  (void)boot(in_len);
  (void)boot(0);
  (void)img;
  return f->bytes;
}

static void test_power_cut_anywhere_in_an_update(unsigned long stride) {
  static uint8_t img[EOB_DEMO_IMAGE_SIZE];
  flashsim f, after;
  unsigned long total, cut, cuts = 0, retried = 0;
  int tries;
  size_t in_len;
  make_image(img, "3", false, false);
  in_len = update_frames(img, "3");
  flashsim_init(&f, 2 * ERASE, SLOT, ERASE, WRITE);
  total = run_update(&f, img, in_len);
  CHECK(strcmp(demo.model_version, "3") == 0 && f.violations == 0);
  flashsim_free(&f);
  for (cut = 0;; cut = cut + stride < total ? cut + stride : total) {
    flashsim_init(&f, 2 * ERASE, SLOT, ERASE, WRITE);
    f.budget = (long)cut;
    (void)run_update(&f, img, in_len);
    /* power back: the flash as the cut left it, no budget */
    flashsim_init(&after, 2 * ERASE, SLOT, ERASE, WRITE);
    flashsim_copy(&after, &f);
    R.f = &after;
    CHECK(boot(0));
    CHECK(strcmp(demo.model_version, "builtin") == 0 || strcmp(demo.model_version, "3") == 0);
    CHECK(demo.slots.table.state == EOB_BOOT_CONFIRMED);
    CHECK(health() >= 18);
    /* the update driven to its end from wherever it stopped, as a host does: offer again until verified (a
     * chunk cut half-written makes the device forget the transfer: NACK(FLASH), offer again) */
    for (tries = 0; tries < 3; ++tries) {
      CHECK(boot(in_len));
      if (sent(EOB_MODEL_STATUS, EOB_TRANSFER_VERIFIED)) break;
      retried += sent(EOB_NACK, EOB_ERR_FLASH);
    }
    CHECK(tries < 3);
    CHECK(boot(0));
    if (strcmp(demo.model_version, "3") != 0 || demo.slots.table.state != EOB_BOOT_CONFIRMED) {
      fprintf(stderr, "cut at byte %lu of %lu: model %s state %u\n", cut, total, demo.model_version,
              (unsigned)demo.slots.table.state);
      CHECK(0);
    }
    CHECK(f.violations == 0 && after.violations == 0); /* nothing written over unerased flash */
    flashsim_free(&after);
    flashsim_free(&f);
    ++cuts;
    if (cut == total) break;
  }
  printf("test_demo: %lu power cuts over %lu flash bytes (%lu needed a second offer)\n", cuts, total, retried);
}

int main(int argc, char **argv) {
  const char *every = getenv("EOB_CUT_EVERY_BYTE");
  (void)argc;
  (void)argv;
  memset(&hal, 0, sizeof hal);
  hal.ctx = &R;
  hal.write = r_write;
  hal.read = r_read;
  hal.micros = r_micros;
  hal.flash_read = r_fread;
  hal.flash_erase = r_ferase;
  hal.flash_write = r_fwrite;
  test_update_commit_confirm_and_revert();
  test_power_cut_anywhere_in_an_update(every != NULL && every[0] == '1' ? 13u : 499u);
  printf("test_demo: %d checks, %d failed\n", check_count, check_failures);
  return check_failures != 0;
}
