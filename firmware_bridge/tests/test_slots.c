/* test_slots.c: the model slots against a file-backed flash image, with a power cut at every step.
 *
 * Part 1 checks the transfer and the state table call by call (bad offers and chunks, resume, missing
 * ranges, hash mismatch, confirm, revert, a start while testing, damaged images). Part 2 runs one long
 * update sequence of 13 steps (install A, test, confirm; install B, test, health check fails; install C,
 * test, reset without confirm; install C again, test, confirm) once without cuts, then again for each cut point: the
 * flash stops at byte N, the image is saved to a file, a fresh flash loads it, the device starts, and
 *   - the start succeeds and its outcome (running slot, table state, confirmed, trial, flags) is what a
 *     start gives from the flash as it was just before or just after the step that was cut;
 *   - the running image verifies and is A, B or C (or the built-in model);
 *   - a transfer that was cut resumes: no chunk acknowledged before the cut is missing after it;
 *   - driving on from there (install C, test, confirm) ends with C confirmed, also after another start;
 *   - the flash was never erased or written against the rules (alignment, write once).
 * Cut points: the first, second, middle and last byte of every erase and write, and every byte of the
 * small ones (table records, chunk entries); every byte of the whole sequence with EOB_CUT_EVERY_BYTE=1.
 * Usage: test_slots [GOLDEN_DIR, unused]
 */
#include <string.h>

#include "check.h"
#include "eob_msg.h"
#include "eob_sha256.h"
#include "eob_slots.h"
#include "flashsim.h"

#define SLOT_SIZE 4096u
#define HEADER_SIZE 512u
#define CHUNK 128u

typedef struct {
  const char *name;
  uint8_t data[1400];
  uint32_t size;
  uint8_t sha[32];
} image;

static image A, B, C;

static void make_image(image *img, const char *name, uint32_t size, uint32_t seed) {
  uint32_t i, x = seed;
  img->name = name;
  img->size = size;
  for (i = 0; i < size; ++i) {
    x = x * 1103515245u + 12345u;
    img->data[i] = (uint8_t)(i % 97 == 0 ? 0x00 : i % 89 == 0 ? 0xFF : x >> 16);
  }
  eob_sha256_of(img->data, size, img->sha);
}

/* A device: its flash, HAL and slots. */
typedef struct {
  flashsim flash;
  eob_hal hal;
  eob_slots slots;
  eob_flash_geometry geo;
} device;

static void device_open(device *d, const eob_flash_geometry *geo) {
  d->geo = *geo;
  flashsim_init(&d->flash, 2 * geo->erase_size, geo->slot_size, geo->erase_size, geo->write_size);
  d->hal = flashsim_hal(&d->flash);
}

static eob_err device_start(device *d) {
  if (!eob_slots_init(&d->slots, &d->hal, &d->geo)) return EOB_ERR_STATE;
  return eob_slots_boot(&d->slots);
}

static eob_model_offer offer_of(const image *img) {
  eob_model_offer o;
  memset(&o, 0, sizeof o);
  o.image_size = img->size;
  o.chunk_size = CHUNK;
  o.format = 1;
  memcpy(o.sha256, img->sha, 32);
  o.name = eob_str_of(img->name);
  o.version = eob_str_of("1.0");
  return o;
}

static eob_err send_chunk(device *d, const image *img, uint32_t i, uint32_t *missing) {
  eob_model_chunk c;
  uint32_t len = img->size - i * CHUNK < CHUNK ? img->size - i * CHUNK : CHUNK;
  c.tag = eob_transfer_tag(img->sha);
  c.index = i;
  c.data.data = img->data + i * CHUNK;
  c.data.len = (uint16_t)len;
  c.crc32 = eob_crc32(c.data.data, len);
  return eob_slots_chunk(&d->slots, &c, missing);
}

/* Offer, send what the status says is missing, commit; again from the offer after a FLASH error. *acked
 * counts chunks acknowledged in this call (for the resume check). */
static eob_err install(device *d, const image *img, int *acked) {
  eob_model_offer o = offer_of(img);
  int attempt;
  eob_err e = EOB_OK;
  for (attempt = 0; attempt < 4; ++attempt) {
    eob_model_status st;
    uint32_t r, k, missing;
    e = eob_slots_offer(&d->slots, &o);
    if (e != EOB_OK) return e;
    eob_slots_status(&d->slots, &st);
    for (r = 0; r < st.n_ranges && e == EOB_OK; ++r)
      for (k = 0; k < st.missing[r].count && e == EOB_OK; ++k) {
        e = send_chunk(d, img, st.missing[r].first + k, &missing);
        if (e == EOB_OK && acked != NULL) ++*acked;
      }
    if (e == EOB_ERR_FLASH && !d->flash.dead) continue;
    if (e != EOB_OK) return e;
    e = eob_slots_commit(&d->slots, img->sha);
    if (e != EOB_ERR_HASH && !(e == EOB_ERR_FLASH && !d->flash.dead)) return e;
  }
  return e;
}

static const image *running_image(device *d) {
  eob_slot_image info;
  const image *all[3];
  int i;
  all[0] = &A, all[1] = &B, all[2] = &C;
  if (d->slots.running == EOB_SLOT_NONE) return NULL;
  if (!eob_slots_image_info(&d->slots, d->slots.running, true, &info)) return NULL;
  for (i = 0; i < 3; ++i)
    if (memcmp(info.sha256, all[i]->sha, 32) == 0) return all[i];
  return NULL;
}

/* -- part 1 --------------------------------------------------------------------------------------------- */

static void test_transfer(const eob_flash_geometry *geo) {
  device d;
  eob_model_offer o;
  eob_model_status st;
  eob_model_chunk c;
  uint32_t missing, i;
  int acked = 0;
  device_open(&d, geo);
  CHECK(device_start(&d) == EOB_OK);
  CHECK(d.slots.running == EOB_SLOT_NONE && d.slots.table.state == EOB_BOOT_CONFIRMED);
  eob_slots_status(&d.slots, &st);
  CHECK(st.transfer == EOB_TRANSFER_NONE && st.confirmed_slot == EOB_SLOT_NONE && st.n_ranges == 0);

  /* refusals before anything is written */
  o = offer_of(&A);
  o.chunk_size = 0;
  CHECK(eob_slots_offer(&d.slots, &o) == EOB_ERR_MALFORMED);
  o = offer_of(&A);
  o.chunk_size = (uint16_t)(geo->write_size == 1 ? 0 : 3 * geo->write_size + 1); /* not whole write units */
  if (o.chunk_size) CHECK(eob_slots_offer(&d.slots, &o) == EOB_ERR_MALFORMED);
  o = offer_of(&A);
  o.name = eob_str_of("a-name-that-is-longer-than-32-bytes");
  CHECK(eob_slots_offer(&d.slots, &o) == EOB_ERR_MALFORMED);
  o = offer_of(&A);
  o.image_size = SLOT_SIZE;
  CHECK(eob_slots_offer(&d.slots, &o) == EOB_ERR_NO_SPACE);
  CHECK(send_chunk(&d, &A, 0, &missing) == EOB_ERR_NO_TRANSFER);
  CHECK(eob_slots_commit(&d.slots, A.sha) == EOB_ERR_NO_TRANSFER);
  CHECK(d.flash.bytes == 0);

  /* chunks out of order, repeated, wrong; the status lists what is missing */
  o = offer_of(&A); /* 700 bytes: 6 chunks */
  CHECK(eob_slots_offer(&d.slots, &o) == EOB_OK);
  CHECK(d.slots.target == 0);
  CHECK(send_chunk(&d, &A, 2, &missing) == EOB_OK && missing == 5);
  CHECK(send_chunk(&d, &A, 2, &missing) == EOB_OK && missing == 5);
  CHECK(send_chunk(&d, &A, 5, &missing) == EOB_OK && missing == 4);
  CHECK(send_chunk(&d, &B, 1, &missing) == EOB_ERR_NO_TRANSFER);
  c.tag = eob_transfer_tag(A.sha), c.index = 1, c.data.data = A.data + CHUNK, c.data.len = CHUNK;
  c.crc32 = eob_crc32(c.data.data, CHUNK) ^ 1u;
  CHECK(eob_slots_chunk(&d.slots, &c, &missing) == EOB_ERR_CHUNK_CRC);
  c.crc32 ^= 1u, c.data.len = CHUNK - 1;
  c.crc32 = eob_crc32(c.data.data, c.data.len);
  CHECK(eob_slots_chunk(&d.slots, &c, &missing) == EOB_ERR_CHUNK_INDEX);
  c.index = 6, c.data.len = CHUNK, c.crc32 = eob_crc32(c.data.data, CHUNK);
  CHECK(eob_slots_chunk(&d.slots, &c, &missing) == EOB_ERR_CHUNK_INDEX);
  eob_slots_status(&d.slots, &st);
  CHECK(st.transfer == EOB_TRANSFER_RECEIVING && st.chunks_total == 6 && st.chunks_missing == 4);
  CHECK(st.n_ranges == 2 && st.missing[0].first == 0 && st.missing[0].count == 2 && st.missing[1].first == 3 &&
        st.missing[1].count == 2);
  CHECK(st.last_error == EOB_ERR_CHUNK_INDEX);
  CHECK(eob_slots_commit(&d.slots, A.sha) == EOB_ERR_INCOMPLETE);

  /* a reset: the same offer resumes with chunks 2 and 5 present */
  CHECK(device_start(&d) == EOB_OK);
  eob_slots_status(&d.slots, &st);
  CHECK(st.transfer == EOB_TRANSFER_NONE);
  CHECK(eob_slots_offer(&d.slots, &o) == EOB_OK);
  eob_slots_status(&d.slots, &st);
  CHECK(st.chunks_missing == 4 && st.n_ranges == 2);
  CHECK(install(&d, &A, &acked) == EOB_OK && acked == 4);
  eob_slots_status(&d.slots, &st);
  CHECK(st.transfer == EOB_TRANSFER_VERIFIED && st.boot_state == EOB_BOOT_PENDING && st.trial_slot == 0);
  CHECK(eob_slots_commit(&d.slots, A.sha) == EOB_OK);     /* repeated: still verified */
  CHECK(eob_slots_offer(&d.slots, &o) == EOB_OK);         /* repeated offer of the pending image */
  CHECK(d.slots.transfer == EOB_TRANSFER_VERIFIED);
  CHECK(eob_slots_confirm(&d.slots) == EOB_ERR_STATE);    /* not running it yet */

  /* start: trial; another start without a confirm: reverted to the built-in model */
  CHECK(device_start(&d) == EOB_OK);
  CHECK(d.slots.running == 0 && d.slots.table.state == EOB_BOOT_TESTING && running_image(&d) == &A);
  CHECK(eob_slots_offer(&d.slots, &o) == EOB_ERR_BUSY);
  CHECK(device_start(&d) == EOB_OK);
  CHECK(d.slots.running == EOB_SLOT_NONE && d.slots.table.state == EOB_BOOT_CONFIRMED);
  CHECK(d.slots.table.flags & EOB_BOOT_FLAG_REVERTED);
  eob_slots_status(&d.slots, &st);
  CHECK(st.flags & EOB_STATUS_REVERTED);

  /* A again (all chunks still there: resume with nothing missing), start, confirm */
  acked = 0;
  CHECK(install(&d, &A, &acked) == EOB_OK && acked == 0);
  CHECK(device_start(&d) == EOB_OK && d.slots.running == 0);
  CHECK(eob_slots_confirm(&d.slots) == EOB_OK);
  CHECK(eob_slots_confirm(&d.slots) == EOB_OK); /* repeated */
  CHECK(device_start(&d) == EOB_OK && d.slots.running == 0 && d.slots.table.confirmed == 0);
  CHECK(!(d.slots.table.flags & EOB_BOOT_FLAG_REVERTED));

  /* B goes to slot 1; the health check fails: revert to A */
  CHECK(install(&d, &B, NULL) == EOB_OK && d.slots.target == 1);
  CHECK(device_start(&d) == EOB_OK && d.slots.running == 1 && running_image(&d) == &B);
  CHECK(eob_slots_revert(&d.slots) == EOB_OK && d.slots.running == 0);
  CHECK(eob_slots_revert(&d.slots) == EOB_ERR_STATE);
  CHECK(device_start(&d) == EOB_OK && d.slots.running == 0 && running_image(&d) == &A);

  /* a pending image replaced by another offer before it ever ran */
  CHECK(install(&d, &B, NULL) == EOB_OK && d.slots.table.state == EOB_BOOT_PENDING);
  CHECK(install(&d, &C, NULL) == EOB_OK && d.slots.table.state == EOB_BOOT_PENDING);
  CHECK(device_start(&d) == EOB_OK && running_image(&d) == &C);
  CHECK(eob_slots_confirm(&d.slots) == EOB_OK);

  /* wrong data with right chunk CRCs: the SHA-256 refuses it and the transfer starts over */
  {
    image bad = B;
    bad.data[10] ^= 0x55;
    memcpy(bad.sha, B.sha, 32);
    CHECK(eob_slots_offer(&d.slots, &o) == EOB_OK || 1);
    o = offer_of(&bad);
    CHECK(eob_slots_offer(&d.slots, &o) == EOB_OK && d.slots.target == 0);
    for (i = 0; i < d.slots.chunks_total; ++i) CHECK(send_chunk(&d, &bad, i, &missing) == EOB_OK);
    CHECK(missing == 0);
    CHECK(eob_slots_commit(&d.slots, bad.sha) == EOB_ERR_HASH);
    CHECK(d.slots.transfer == EOB_TRANSFER_NONE && d.slots.last_error == EOB_ERR_HASH);
    CHECK(eob_slots_offer(&d.slots, &o) == EOB_OK && d.slots.chunks_missing == d.slots.chunks_total);
  }

  /* a damaged pending image is reverted at start; a damaged confirmed one leaves the built-in model */
  CHECK(install(&d, &A, NULL) == EOB_OK && d.slots.table.trial == 0);
  d.flash.mem[EOB_REGION_SLOT0][HEADER_SIZE + 5] ^= 0x01;
  CHECK(device_start(&d) == EOB_OK && d.slots.running == 1 && running_image(&d) == &C);
  CHECK(d.slots.table.flags & EOB_BOOT_FLAG_REVERTED);
  d.flash.mem[EOB_REGION_SLOT1][HEADER_SIZE + 7] &= 0x0F;
  CHECK(device_start(&d) == EOB_OK && d.slots.running == EOB_SLOT_NONE && d.slots.last_error == EOB_ERR_HASH);
  CHECK(d.flash.violations == 0);
  flashsim_free(&d.flash);
}

static void test_status_ranges_truncate(void) {
  /* 40 chunks of 32 bytes, every other one sent: 20 ranges, more than EOB_STATUS_MAX_RANGES (16) */
  eob_flash_geometry geo = {256, 1, SLOT_SIZE, HEADER_SIZE};
  device d;
  eob_model_offer o;
  eob_model_status st;
  eob_model_chunk c;
  uint32_t i, missing;
  image img;
  make_image(&img, "many", 1280, 7);
  device_open(&d, &geo);
  CHECK(device_start(&d) == EOB_OK);
  o = offer_of(&img);
  o.chunk_size = 32;
  CHECK(eob_slots_offer(&d.slots, &o) == EOB_OK && d.slots.chunks_total == 40);
  for (i = 1; i < 40; i += 2) {
    c.tag = eob_transfer_tag(img.sha), c.index = i, c.data.data = img.data + 32 * i, c.data.len = 32;
    c.crc32 = eob_crc32(c.data.data, 32);
    CHECK(eob_slots_chunk(&d.slots, &c, &missing) == EOB_OK);
  }
  eob_slots_status(&d.slots, &st);
  CHECK(st.chunks_missing == 20 && st.n_ranges == EOB_STATUS_MAX_RANGES);
  CHECK(st.flags & EOB_STATUS_RANGES_TRUNCATED);
  CHECK(st.missing[3].first == 6 && st.missing[3].count == 1);
  flashsim_free(&d.flash);
}

static void test_damaged_chunk_is_missing_after_a_reset(void) {
  /* a chunk whose data in flash no longer has its entry's CRC counts as missing; sending it again finds the
   * flash dirty, so the transfer starts over, and then completes */
  eob_flash_geometry geo = {256, 1, SLOT_SIZE, HEADER_SIZE};
  device d;
  eob_model_offer o = offer_of(&B);
  eob_model_status st;
  uint32_t i, missing;
  device_open(&d, &geo);
  CHECK(device_start(&d) == EOB_OK);
  CHECK(eob_slots_offer(&d.slots, &o) == EOB_OK);
  for (i = 0; i < 4; ++i) CHECK(send_chunk(&d, &B, i, &missing) == EOB_OK);
  d.flash.mem[EOB_REGION_SLOT0][HEADER_SIZE + 2 * CHUNK + 9] &= 0x7E;
  CHECK(device_start(&d) == EOB_OK);
  CHECK(eob_slots_offer(&d.slots, &o) == EOB_OK);
  eob_slots_status(&d.slots, &st);
  CHECK(st.chunks_missing == 5 && st.missing[0].first == 2 && st.missing[0].count == 1);
  CHECK(send_chunk(&d, &B, 2, &missing) == EOB_ERR_FLASH && d.slots.transfer == EOB_TRANSFER_NONE);
  CHECK(install(&d, &B, NULL) == EOB_OK && d.slots.table.state == EOB_BOOT_PENDING);
  CHECK(d.flash.violations == 0);
  flashsim_free(&d.flash);
}

static void test_geometry_refused(void) {
  const eob_flash_geometry bad[] = {
      {256, 3, SLOT_SIZE, HEADER_SIZE}, {300, 1, SLOT_SIZE, HEADER_SIZE}, {256, 1, SLOT_SIZE, 100},
      {256, 1, 512, 512},               {16, 1, SLOT_SIZE, HEADER_SIZE},  {256, 1, 4000, HEADER_SIZE}};
  const eob_flash_geometry good = {256, 1, SLOT_SIZE, HEADER_SIZE};
  eob_slots s;
  flashsim f;
  eob_hal hal, no_flash;
  size_t i;
  flashsim_init(&f, 512, SLOT_SIZE, 256, 1);
  hal = flashsim_hal(&f);
  memset(&no_flash, 0, sizeof no_flash);
  for (i = 0; i < sizeof bad / sizeof bad[0]; ++i) CHECK(!eob_slots_init(&s, &hal, &bad[i]));
  CHECK(!eob_slots_init(&s, &no_flash, &good));
  CHECK(eob_slots_init(&s, &hal, &good));
  flashsim_free(&f);
}

/* -- part 2: power cuts ---------------------------------------------------------------------------------- */

#define STEPS 13
static const char *step_names[STEPS] = {"start (new board)", "install A",      "start: test A",
                                        "confirm A",         "install B",      "start: test B",
                                        "revert B (health check)", "install C", "start: test C",
                                        "start without confirm", "install C again", "start: test C",
                                        "confirm C"};

typedef struct {
  uint8_t running, state, confirmed, trial, flags;
  const image *img;
} outcome;

static bool same_outcome(const outcome *a, const outcome *b) {
  return a->running == b->running && a->state == b->state && a->confirmed == b->confirmed &&
         a->trial == b->trial && a->flags == b->flags && a->img == b->img;
}

static outcome outcome_of(device *d) {
  outcome o;
  o.running = d->slots.running;
  o.state = d->slots.table.state;
  o.confirmed = d->slots.table.confirmed;
  o.trial = d->slots.table.trial;
  o.flags = d->slots.table.flags;
  o.img = running_image(d);
  return o;
}

/* Runs the sequence until the flash dies. *step: the step it was in; *acked: chunks of that step's install
 * acknowledged. snapshots (optional): the flash before each step, and after the last. */
static void run_sequence(device *d, int *step, int *acked, flashsim *snapshots) {
  int s;
  for (s = 0; s < STEPS; ++s) {
    eob_err e = EOB_OK;
    *step = s;
    *acked = 0;
    if (snapshots != NULL) flashsim_copy(&snapshots[s], &d->flash);
    switch (s) {
      case 0: case 2: case 5: case 8: case 9: case 11: e = device_start(d); break;
      case 1: e = install(d, &A, acked); break;
      case 3: case 12: e = eob_slots_confirm(&d->slots); break;
      case 4: e = install(d, &B, acked); break;
      case 6: e = eob_slots_revert(&d->slots); break;
      case 7: e = install(d, &C, acked); break;
      case 10: e = install(d, &C, acked); break;
    }
    if (d->flash.dead) return;
    if (e != EOB_OK) {
      fprintf(stderr, "uncut sequence: step %d (%s) failed with %d\n", s, step_names[s], (int)e);
      CHECK(e == EOB_OK);
      return;
    }
  }
  *step = STEPS;
  if (snapshots != NULL) flashsim_copy(&snapshots[STEPS], &d->flash);
}

/* After a reboot: drive on until C is confirmed. */
static bool drive_to_c(device *d) {
  int round;
  for (round = 0; round < 4; ++round) {
    const image *img = running_image(d);
    if (img == &C && d->slots.table.state == EOB_BOOT_CONFIRMED && d->slots.running == d->slots.table.confirmed)
      return true;
    if (d->slots.table.state == EOB_BOOT_TESTING) {
      if (img == &C) {
        if (eob_slots_confirm(&d->slots) != EOB_OK) return false;
      } else if (eob_slots_revert(&d->slots) != EOB_OK) {
        return false;
      }
      continue;
    }
    if (install(d, &C, NULL) != EOB_OK || device_start(d) != EOB_OK) return false;
  }
  return false;
}

static int cut_runs;

static void cut_at(const eob_flash_geometry *geo, long n, const outcome *refs, FILE *path) {
  device d, r;
  int step, acked;
  outcome got;
  device_open(&d, geo);
  d.flash.budget = n;
  run_sequence(&d, &step, &acked, NULL);
  ++cut_runs;
  CHECK(d.flash.violations == 0);
  CHECK(flashsim_save(&d.flash, path));
  flashsim_free(&d.flash);
  if (step >= STEPS) return; /* the budget outlasted the sequence */

  device_open(&r, geo); /* a reboot: a fresh flash loaded from the file */
  CHECK(flashsim_load(&r.flash, path));
  CHECK(device_start(&r) == EOB_OK);
  got = outcome_of(&r);
  if (!same_outcome(&got, &refs[step]) && !same_outcome(&got, &refs[step + 1])) {
    fprintf(stderr, "cut at byte %ld in step %d (%s): running %u state %u confirmed %u trial %u flags %u\n", n,
            step, step_names[step], got.running, got.state, got.confirmed, got.trial, got.flags);
    CHECK(false);
  }
  CHECK(got.running == EOB_SLOT_NONE || got.img != NULL);
  if ((step == 7 || step == 10) && acked > 0 && r.slots.table.state == EOB_BOOT_CONFIRMED) {
    eob_model_offer o = offer_of(&C);
    CHECK(eob_slots_offer(&r.slots, &o) == EOB_OK);
    CHECK(r.slots.transfer == EOB_TRANSFER_VERIFIED || r.slots.chunks_missing <= r.slots.chunks_total - (uint32_t)acked);
  }
  CHECK(drive_to_c(&r));
  CHECK(device_start(&r) == EOB_OK);
  got = outcome_of(&r);
  CHECK(got.img == &C && got.state == EOB_BOOT_CONFIRMED);
  CHECK(r.flash.violations == 0);
  flashsim_free(&r.flash);
}

static void test_power_cuts(const eob_flash_geometry *geo, bool every_byte, FILE *path) {
  device d, ref;
  flashsim snaps[STEPS + 1];
  outcome refs[STEPS + 1];
  int step, acked, i, ops;
  unsigned long total;
  long n, last = -1;
  const int runs_before = cut_runs;
  device_open(&d, geo);
  for (i = 0; i <= STEPS; ++i) flashsim_init(&snaps[i], 2 * geo->erase_size, geo->slot_size, geo->erase_size,
                                             geo->write_size);
  run_sequence(&d, &step, &acked, snaps);
  CHECK(step == STEPS && d.flash.violations == 0 && d.flash.ops <= FLASHSIM_MAX_OPS);
  CHECK(running_image(&d) == &C && d.slots.table.state == EOB_BOOT_CONFIRMED);
  total = d.flash.bytes;
  ops = d.flash.ops;
  /* what a start gives from the flash before each step */
  for (i = 0; i <= STEPS; ++i) {
    device_open(&ref, geo);
    flashsim_copy(&ref.flash, &snaps[i]);
    CHECK(device_start(&ref) == EOB_OK);
    refs[i] = outcome_of(&ref);
    flashsim_free(&ref.flash);
  }
  if (every_byte) {
    for (n = 0; n <= (long)total; ++n) cut_at(geo, n, refs, path);
  } else {
    for (i = 0; i < ops; ++i) {
      const long start = (long)d.flash.op_start[i], len = (long)d.flash.op_len[i];
      long k;
      for (k = 0; k < len; ++k) {
        if (len > 32 && k != 0 && k != 1 && k != len / 2 && k != len - 1) continue;
        n = start + k;
        if (n <= last) continue; /* ops are in order: each point once */
        cut_at(geo, n, refs, path);
        last = n;
      }
    }
    cut_at(geo, (long)total, refs, path);
  }
  printf("power cuts (erase %u, write %u): %lu bytes changed in %d ops over %d steps, %d cut points\n",
         (unsigned)geo->erase_size, (unsigned)geo->write_size, total, ops, STEPS, cut_runs - runs_before);
  for (i = 0; i <= STEPS; ++i) flashsim_free(&snaps[i]);
  flashsim_free(&d.flash);
}

int main(int argc, char **argv) {
  const eob_flash_geometry geos[2] = {{256, 1, SLOT_SIZE, HEADER_SIZE}, {512, 8, SLOT_SIZE, HEADER_SIZE}};
  const char *every = getenv("EOB_CUT_EVERY_BYTE");
  FILE *path = tmpfile();
  size_t g;
  (void)argc;
  (void)argv;
  make_image(&A, "digits_a", 700, 1);
  make_image(&B, "digits_b", 1000, 2);
  make_image(&C, "digits_c", 1300, 3);
  for (g = 0; g < 2; ++g) test_transfer(&geos[g]);
  test_status_ranges_truncate();
  test_damaged_chunk_is_missing_after_a_reset();
  test_geometry_refused();
  CHECK(path != NULL);
  if (path == NULL) return check_report("test_slots");
  for (g = 0; g < 2; ++g) test_power_cuts(&geos[g], every != NULL && every[0] == '1', path);
  fclose(path);
  return check_report("test_slots");
}
