/* flashsim.h: a file-backed NOR flash for the host tests of eob_slots, with power cuts on cue.
 *
 * Three regions (table, slot 0, slot 1) held in memory and saved to / loaded from one image file (a
 * "reboot" is a save, a fresh flashsim and a load; the tests use a tmpfile()). Like NOR flash: erase sets whole erase units to 0xFF,
 * write programs whole write units that must be blank (anything else counts as a violation and fails),
 * reads are free. A budget of bytes models a power cut: the erase or write that exhausts it stops after
 * exactly that many bytes changed, and the flash is dead from then on (every later erase/write fails).
 */
#ifndef EOB_TEST_FLASHSIM_H_
#define EOB_TEST_FLASHSIM_H_

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "eob_hal.h"

#define FLASHSIM_REGIONS 3
#define FLASHSIM_MAX_OPS 4096

typedef struct {
  uint8_t *mem[FLASHSIM_REGIONS];
  uint32_t size[FLASHSIM_REGIONS];
  uint32_t erase_size, write_size;
  long budget;               /* bytes that may still change; negative: no limit */
  bool dead;                 /* the power is gone */
  unsigned long bytes;       /* bytes changed (erased or written) so far */
  unsigned long violations;  /* misaligned erase/write, or a write over non-blank flash */
  /* every erase/write op: where it starts in the byte count, and its length */
  unsigned long op_start[FLASHSIM_MAX_OPS], op_len[FLASHSIM_MAX_OPS];
  int ops;
} flashsim;

TEST_HELPER static void flashsim_init(flashsim *f, uint32_t table_size, uint32_t slot_size, uint32_t erase_size,
                          uint32_t write_size) {
  int r;
  memset(f, 0, sizeof *f);
  f->size[0] = table_size;
  f->size[1] = f->size[2] = slot_size;
  for (r = 0; r < FLASHSIM_REGIONS; ++r) {
    f->mem[r] = (uint8_t *)malloc(f->size[r]);
    memset(f->mem[r], 0xFF, f->size[r]);
  }
  f->erase_size = erase_size;
  f->write_size = write_size;
  f->budget = -1;
}

TEST_HELPER static void flashsim_free(flashsim *f) {
  int r;
  for (r = 0; r < FLASHSIM_REGIONS; ++r) free(f->mem[r]);
}

TEST_HELPER static void flashsim_copy(flashsim *dst, const flashsim *src) {
  int r;
  for (r = 0; r < FLASHSIM_REGIONS; ++r) memcpy(dst->mem[r], src->mem[r], src->size[r]);
}

TEST_HELPER static bool flashsim_save(const flashsim *f, FILE *fp) {
  int r;
  bool ok = fp != NULL;
  if (ok) rewind(fp);
  for (r = 0; ok && r < FLASHSIM_REGIONS; ++r) ok = fwrite(f->mem[r], 1, f->size[r], fp) == f->size[r];
  return ok && fflush(fp) == 0;
}

TEST_HELPER static bool flashsim_load(flashsim *f, FILE *fp) {
  int r;
  bool ok = fp != NULL;
  if (ok) rewind(fp);
  for (r = 0; ok && r < FLASHSIM_REGIONS; ++r) ok = fread(f->mem[r], 1, f->size[r], fp) == f->size[r];
  return ok;
}

TEST_HELPER static bool flashsim_in(const flashsim *f, uint8_t region, uint32_t off, uint32_t n) {
  return region < FLASHSIM_REGIONS && off <= f->size[region] && n <= f->size[region] - off;
}

TEST_HELPER static void flashsim_log(flashsim *f, uint32_t n) {
  if (f->ops < FLASHSIM_MAX_OPS) {
    f->op_start[f->ops] = f->bytes;
    f->op_len[f->ops] = n;
  }
  ++f->ops;
}

/* One byte changes, if the budget allows. */
TEST_HELPER static bool flashsim_spend(flashsim *f) {
  if (f->dead) return false;
  if (f->budget == 0) {
    f->dead = true;
    return false;
  }
  if (f->budget > 0) --f->budget;
  ++f->bytes;
  return true;
}

TEST_HELPER static bool flashsim_read(void *ctx, uint8_t region, uint32_t off, uint8_t *data, uint32_t n) {
  flashsim *f = (flashsim *)ctx;
  if (!flashsim_in(f, region, off, n)) return false;
  memcpy(data, f->mem[region] + off, n);
  return true;
}

TEST_HELPER static bool flashsim_erase(void *ctx, uint8_t region, uint32_t off, uint32_t n) {
  flashsim *f = (flashsim *)ctx;
  uint32_t i;
  if (f->dead) return false;
  if (!flashsim_in(f, region, off, n) || off % f->erase_size || n % f->erase_size) {
    ++f->violations;
    return false;
  }
  flashsim_log(f, n);
  for (i = 0; i < n; ++i) {
    if (!flashsim_spend(f)) return false;
    f->mem[region][off + i] = 0xFF;
  }
  return true;
}

TEST_HELPER static bool flashsim_write(void *ctx, uint8_t region, uint32_t off, const uint8_t *data, uint32_t n) {
  flashsim *f = (flashsim *)ctx;
  uint32_t i;
  if (f->dead) return false;
  if (!flashsim_in(f, region, off, n) || off % f->write_size || n % f->write_size) {
    ++f->violations;
    return false;
  }
  for (i = 0; i < n; ++i)
    if (f->mem[region][off + i] != 0xFF) {
      ++f->violations;
      return false;
    }
  flashsim_log(f, n);
  for (i = 0; i < n; ++i) {
    if (!flashsim_spend(f)) return false;
    f->mem[region][off + i] = data[i];
  }
  return true;
}

TEST_HELPER static eob_hal flashsim_hal(flashsim *f) {
  eob_hal h;
  memset(&h, 0, sizeof h);
  h.ctx = f;
  h.flash_read = flashsim_read;
  h.flash_erase = flashsim_erase;
  h.flash_write = flashsim_write;
  return h;
}

#endif
