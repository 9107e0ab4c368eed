/* eob_slots.c: model slots and the slot table, MCUboot-style (WIRE.md, "Model slots").
 *
 * The state table of WIRE.md, as code:
 *
 *   state      event                              next       written first
 *   CONFIRMED  commit, SHA-256 right              PENDING    trial = the written slot
 *   PENDING    boot, trial image verifies         TESTING    trials + 1
 *   PENDING    boot, trial image does not verify  CONFIRMED  trial none, REVERTED
 *   PENDING    a different offer                  CONFIRMED  trial none (then the slot is erased)
 *   TESTING    confirm (health check passed)      CONFIRMED  confirmed = trial
 *   TESTING    revert (health check failed)       CONFIRMED  trial none, REVERTED
 *   TESTING    boot (no confirm before the reset) CONFIRMED  trial none, REVERTED
 *   TESTING    offer                              TESTING    refused: EOB_ERR_BUSY
 *
 * Power cuts: a table record goes to the older copy's erase unit (erase, write, read back), so the newer
 * valid copy survives any cut. A slot is erased from its start, so its header dies first, and the header is
 * written only after the whole erase; a chunk's entry is written only after its data, and a chunk counts as
 * present only when its data has the entry's CRC. Flash is never programmed twice: a write unit that
 * already holds the wanted bytes is skipped, one that holds anything else makes the transfer start over.
 */
#include "eob_slots.h"

#include <string.h>

#include "eob_sha256.h"

#define TABLE_MAGIC 0x54424F45u /* "EOBT" */
#define SLOT_MAGIC 0x53424F45u  /* "EOBS" */
#define LAYOUT_VERSION 1u
#define TABLE_RECORD 24u
#define PIECE 64u /* bytes read or written at a time (a multiple of every write unit) */

static void put16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
  put16(p, v);
  put16(p + 2, v >> 16);
}
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t get32(const uint8_t *p) { return get16(p) | get16(p + 2) << 16; }

static uint32_t align_up(uint32_t x, uint32_t a) { return (x + a - 1u) / a * a; }
static uint32_t entries_offset(const eob_slots *s) { return align_up(EOB_SLOT_HEADER_BYTES, s->geo.write_size); }
static uint32_t entry_stride(const eob_slots *s) { return s->geo.write_size > 4u ? s->geo.write_size : 4u; }
static uint32_t max_chunks(const eob_slots *s) {
  uint32_t n = (s->geo.header_size - entries_offset(s)) / entry_stride(s);
  return n < EOB_MAX_CHUNKS ? n : EOB_MAX_CHUNKS;
}
static uint32_t chunk_count(const eob_slot_image *img) {
  return (img->image_size + img->chunk_size - 1u) / img->chunk_size;
}
static uint32_t chunk_len(const eob_slot_image *img, uint32_t i) {
  uint32_t rest = img->image_size - i * img->chunk_size;
  return rest < img->chunk_size ? rest : img->chunk_size;
}
/* A chunk's entry: its CRC-32, with 0xFFFFFFFF (erased flash) stored as 0xFFFFFFFE. */
static uint32_t entry_value(uint32_t crc) { return crc == 0xFFFFFFFFu ? 0xFFFFFFFEu : crc; }

static bool is_blank(const uint8_t *p, uint32_t n) {
  uint32_t i;
  for (i = 0; i < n; ++i)
    if (p[i] != 0xFF) return false;
  return true;
}

uint8_t eob_slots_region(uint8_t slot) { return slot == 0 ? (uint8_t)EOB_REGION_SLOT0 : (uint8_t)EOB_REGION_SLOT1; }
uint32_t eob_slots_image_offset(const eob_slots *s) { return s->geo.header_size; }

static bool flash_read(const eob_slots *s, uint8_t region, uint32_t off, uint8_t *p, uint32_t n) {
  return s->hal->flash_read(s->hal->ctx, region, off, p, n);
}

typedef enum { PROGRAM_OK, PROGRAM_FAILED, PROGRAM_DIRTY } program_result;

/* Write n bytes at off (a write-unit boundary) where flash is blank, skipping units that already hold them;
 * the tail of a partial last unit is padded with 0xFF. */
static program_result program(eob_slots *s, uint8_t region, uint32_t off, const uint8_t *data, uint32_t n) {
  const uint32_t unit = s->geo.write_size;
  uint8_t cur[PIECE], want[PIECE];
  uint32_t done = 0;
  while (done < n) {
    uint32_t len = n - done < PIECE ? n - done : PIECE, padded = align_up(len, unit), u;
    memset(want, 0xFF, sizeof want);
    memcpy(want, data + done, len);
    if (!flash_read(s, region, off + done, cur, padded)) return PROGRAM_FAILED;
    if (is_blank(cur, padded)) {
      if (!s->hal->flash_write(s->hal->ctx, region, off + done, want, padded)) return PROGRAM_FAILED;
    } else {
      for (u = 0; u < padded; u += unit) {
        if (memcmp(cur + u, want + u, unit) == 0) continue;
        if (!is_blank(cur + u, unit)) return PROGRAM_DIRTY;
        if (!s->hal->flash_write(s->hal->ctx, region, off + done + u, want + u, unit)) return PROGRAM_FAILED;
      }
    }
    done += len;
  }
  return PROGRAM_OK;
}

/* CRC-32 of n flash bytes, and optionally their SHA-256. */
static bool flash_digest(const eob_slots *s, uint8_t region, uint32_t off, uint32_t n, uint32_t *crc,
                         eob_sha256 *sha) {
  uint8_t piece[PIECE];
  uint32_t c = 0, done = 0;
  while (done < n) {
    uint32_t len = n - done < PIECE ? n - done : PIECE;
    if (!flash_read(s, region, off + done, piece, len)) return false;
    if (crc != NULL) c = eob_crc32_update(c, piece, len);
    if (sha != NULL) eob_sha256_update(sha, piece, len);
    done += len;
  }
  if (crc != NULL) *crc = c;
  return true;
}

/* -- the slot table ------------------------------------------------------------------------------------- */

static bool read_record(const eob_slots *s, uint8_t copy, eob_slot_table *t) {
  uint8_t r[TABLE_RECORD];
  if (!flash_read(s, EOB_REGION_TABLE, copy * s->geo.erase_size, r, TABLE_RECORD)) return false;
  if (get32(r) != TABLE_MAGIC || r[8] != LAYOUT_VERSION || get32(r + 20) != eob_crc32(r, 20)) return false;
  if (r[9] > EOB_BOOT_TESTING || (r[10] > 1 && r[10] != EOB_SLOT_NONE) || (r[11] > 1 && r[11] != EOB_SLOT_NONE))
    return false;
  t->seq = get32(r + 4);
  t->state = r[9];
  t->confirmed = r[10];
  t->trial = r[11];
  t->flags = r[12];
  t->trials = get32(r + 16);
  return true;
}

static void load_table(eob_slots *s) {
  eob_slot_table t0, t1;
  const bool v0 = read_record(s, 0, &t0), v1 = read_record(s, 1, &t1);
  if (v0 && (!v1 || (int32_t)(t0.seq - t1.seq) > 0)) {
    s->table = t0;
    s->table_copy = 0;
  } else if (v1) {
    s->table = t1;
    s->table_copy = 1;
  } else { /* a new board: the built-in model, confirmed */
    memset(&s->table, 0, sizeof s->table);
    s->table.state = EOB_BOOT_CONFIRMED;
    s->table.confirmed = EOB_SLOT_NONE;
    s->table.trial = EOB_SLOT_NONE;
    s->table_copy = 1;
  }
}

/* Persist t as the next record (seq + 1) in the other copy; s->table follows only on success. */
static bool write_table(eob_slots *s, eob_slot_table t) {
  const uint8_t copy = (uint8_t)(s->table_copy ^ 1u);
  uint8_t r[TABLE_RECORD];
  eob_slot_table back;
  t.seq = s->table.seq + 1u;
  memset(r, 0, sizeof r);
  put32(r, TABLE_MAGIC);
  put32(r + 4, t.seq);
  r[8] = LAYOUT_VERSION;
  r[9] = t.state;
  r[10] = t.confirmed;
  r[11] = t.trial;
  r[12] = t.flags;
  put32(r + 16, t.trials);
  put32(r + 20, eob_crc32(r, 20));
  if (!s->hal->flash_erase(s->hal->ctx, EOB_REGION_TABLE, copy * s->geo.erase_size, s->geo.erase_size) ||
      !s->hal->flash_write(s->hal->ctx, EOB_REGION_TABLE, copy * s->geo.erase_size, r, TABLE_RECORD) ||
      !read_record(s, copy, &back) || back.seq != t.seq)
    return false;
  s->table = t;
  s->table_copy = copy;
  return true;
}

/* -- slot headers --------------------------------------------------------------------------------------- */

static bool read_header(const eob_slots *s, uint8_t slot, eob_slot_image *img) {
  uint8_t h[EOB_SLOT_HEADER_BYTES];
  if (slot > 1 || !flash_read(s, eob_slots_region(slot), 0, h, sizeof h)) return false;
  if (get32(h) != SLOT_MAGIC || h[4] != LAYOUT_VERSION || get32(h + 92) != eob_crc32(h, 92)) return false;
  memset(img, 0, sizeof *img);
  img->format = h[5];
  img->chunk_size = (uint16_t)get16(h + 6);
  img->image_size = get32(h + 8);
  memcpy(img->sha256, h + 12, EOB_SHA256_SIZE);
  memcpy(img->name, h + 44, EOB_NAME_MAX);
  memcpy(img->version, h + 76, EOB_VERSION_MAX);
  return img->chunk_size > 0 && img->image_size > 0 && img->image_size <= s->geo.slot_size - s->geo.header_size &&
         chunk_count(img) <= max_chunks(s);
}

static bool write_header(eob_slots *s, uint8_t slot, const eob_slot_image *img) {
  uint8_t h[EOB_SLOT_HEADER_BYTES];
  memset(h, 0, sizeof h);
  put32(h, SLOT_MAGIC);
  h[4] = LAYOUT_VERSION;
  h[5] = img->format;
  put16(h + 6, img->chunk_size);
  put32(h + 8, img->image_size);
  memcpy(h + 12, img->sha256, EOB_SHA256_SIZE);
  memcpy(h + 44, img->name, strlen(img->name));
  memcpy(h + 76, img->version, strlen(img->version));
  put32(h + 92, eob_crc32(h, 92));
  return program(s, eob_slots_region(slot), 0, h, sizeof h) == PROGRAM_OK;
}

static bool same_image(const eob_slot_image *a, const eob_slot_image *b) {
  return a->image_size == b->image_size && a->chunk_size == b->chunk_size && a->format == b->format &&
         memcmp(a->sha256, b->sha256, EOB_SHA256_SIZE) == 0 && strcmp(a->name, b->name) == 0 &&
         strcmp(a->version, b->version) == 0;
}

static bool verify_image(const eob_slots *s, uint8_t slot, const eob_slot_image *img) {
  eob_sha256 sha;
  uint8_t digest[EOB_SHA256_SIZE];
  eob_sha256_init(&sha);
  if (!flash_digest(s, eob_slots_region(slot), s->geo.header_size, img->image_size, NULL, &sha)) return false;
  eob_sha256_final(&sha, digest);
  return memcmp(digest, img->sha256, EOB_SHA256_SIZE) == 0;
}

bool eob_slots_image_info(const eob_slots *s, uint8_t slot, bool verify, eob_slot_image *out) {
  eob_slot_image img;
  if (!read_header(s, slot, &img) || (verify && !verify_image(s, slot, &img))) return false;
  if (out != NULL) *out = img;
  return true;
}

/* -- init and boot -------------------------------------------------------------------------------------- */

bool eob_slots_init(eob_slots *s, const eob_hal *hal, const eob_flash_geometry *g) {
  if (s == NULL || hal == NULL || g == NULL || hal->flash_read == NULL || hal->flash_erase == NULL ||
      hal->flash_write == NULL)
    return false;
  if (g->write_size != 1 && g->write_size != 2 && g->write_size != 4 && g->write_size != 8) return false;
  if (g->erase_size < TABLE_RECORD || (g->erase_size & (g->erase_size - 1u)) != 0) return false;
  if (g->header_size == 0 || g->header_size % g->erase_size != 0 || g->slot_size % g->erase_size != 0 ||
      g->slot_size <= g->header_size)
    return false;
  memset(s, 0, sizeof *s);
  s->hal = hal;
  s->geo = *g;
  if (max_chunks(s) < 1) return false;
  load_table(s);
  s->running = s->table.confirmed;
  s->transfer = EOB_TRANSFER_NONE;
  return true;
}

eob_err eob_slots_boot(eob_slots *s) {
  eob_slot_table t;
  eob_err err = EOB_OK;
  load_table(s);
  t = s->table;
  s->transfer = EOB_TRANSFER_NONE;
  s->running = t.confirmed;
  if (t.state == EOB_BOOT_PENDING && eob_slots_image_info(s, t.trial, true, NULL)) {
    t.state = EOB_BOOT_TESTING;
    t.trials += 1u;
    if (!write_table(s, t)) return EOB_ERR_FLASH; /* still PENDING: the next start tries again */
    s->running = t.trial;
    return EOB_OK;
  }
  if (t.state != EOB_BOOT_CONFIRMED) { /* TESTING without a confirm, or a PENDING image that does not verify */
    t.state = EOB_BOOT_CONFIRMED;
    t.trial = EOB_SLOT_NONE;
    t.flags |= EOB_BOOT_FLAG_REVERTED;
    if (!write_table(s, t)) err = EOB_ERR_FLASH;
  }
  if (s->running != EOB_SLOT_NONE && !eob_slots_image_info(s, s->running, true, NULL)) {
    s->running = EOB_SLOT_NONE; /* the confirmed image is damaged: the built-in model runs */
    s->last_error = EOB_ERR_HASH;
  }
  return err;
}

eob_err eob_slots_confirm(eob_slots *s) {
  eob_slot_table t = s->table;
  if (t.state == EOB_BOOT_CONFIRMED && s->running == t.confirmed) return EOB_OK;
  if (t.state != EOB_BOOT_TESTING || s->running != t.trial) return EOB_ERR_STATE;
  t.state = EOB_BOOT_CONFIRMED;
  t.confirmed = t.trial;
  t.trial = EOB_SLOT_NONE;
  t.flags &= (uint8_t)~EOB_BOOT_FLAG_REVERTED;
  return write_table(s, t) ? EOB_OK : EOB_ERR_FLASH;
}

eob_err eob_slots_revert(eob_slots *s) {
  eob_slot_table t = s->table;
  if (t.state != EOB_BOOT_TESTING) return EOB_ERR_STATE;
  t.state = EOB_BOOT_CONFIRMED;
  t.trial = EOB_SLOT_NONE;
  t.flags |= EOB_BOOT_FLAG_REVERTED;
  if (!write_table(s, t)) return EOB_ERR_FLASH;
  s->running = t.confirmed;
  return EOB_OK;
}

/* -- transfer ------------------------------------------------------------------------------------------- */

static void set_present(eob_slots *s, uint32_t i) { s->present[i / 8u] |= (uint8_t)(1u << (i % 8u)); }
static bool is_present(const eob_slots *s, uint32_t i) { return (s->present[i / 8u] >> (i % 8u)) & 1u; }

/* Forget the transfer so that the next offer starts over: the slot header's erase unit goes. */
static eob_err forget(eob_slots *s, eob_err why) {
  (void)s->hal->flash_erase(s->hal->ctx, eob_slots_region(s->target), 0, s->geo.erase_size);
  s->transfer = EOB_TRANSFER_NONE;
  s->last_error = (uint16_t)why;
  return why;
}

static eob_err fail(eob_slots *s, eob_err why) {
  s->last_error = (uint16_t)why;
  return why;
}

/* Which chunks of the target slot are there (entry written, data with that CRC). */
static bool scan(eob_slots *s) {
  const uint8_t region = eob_slots_region(s->target);
  uint32_t i;
  memset(s->present, 0, sizeof s->present);
  s->chunks_missing = s->chunks_total;
  for (i = 0; i < s->chunks_total; ++i) {
    uint8_t e[4];
    uint32_t crc;
    if (!flash_read(s, region, entries_offset(s) + i * entry_stride(s), e, 4)) return false;
    if (is_blank(e, 4)) continue;
    if (!flash_digest(s, region, s->geo.header_size + i * s->image.chunk_size, chunk_len(&s->image, i), &crc,
                      NULL))
      return false;
    if (entry_value(crc) == get32(e)) {
      set_present(s, i);
      --s->chunks_missing;
    }
  }
  return true;
}

eob_err eob_slots_offer(eob_slots *s, const eob_model_offer *o) {
  eob_slot_image img, have;
  uint32_t off;
  if (o->image_size == 0 || o->chunk_size == 0 || o->chunk_size % s->geo.write_size != 0 ||
      o->name.len > EOB_NAME_MAX || o->version.len > EOB_VERSION_MAX || (o->name.len && o->name.data == NULL) ||
      (o->version.len && o->version.data == NULL))
    return fail(s, EOB_ERR_MALFORMED);
  memset(&img, 0, sizeof img);
  img.image_size = o->image_size;
  img.chunk_size = o->chunk_size;
  img.format = o->format;
  memcpy(img.sha256, o->sha256, EOB_SHA256_SIZE);
  if (o->name.len) memcpy(img.name, o->name.data, o->name.len);
  if (o->version.len) memcpy(img.version, o->version.data, o->version.len);
  if (memchr(img.name, 0, o->name.len) != NULL || memchr(img.version, 0, o->version.len) != NULL)
    return fail(s, EOB_ERR_MALFORMED);
  if (img.image_size > s->geo.slot_size - s->geo.header_size || chunk_count(&img) > max_chunks(s))
    return fail(s, EOB_ERR_NO_SPACE);
  if (s->table.state == EOB_BOOT_TESTING) return fail(s, EOB_ERR_BUSY);

  s->target = s->table.confirmed == 0 ? 1u : 0u;
  s->image = img;
  s->chunks_total = chunk_count(&img);
  s->transfer = EOB_TRANSFER_NONE;
  if (s->table.state == EOB_BOOT_PENDING) {
    if (s->table.trial == s->target && read_header(s, s->target, &have) && same_image(&have, &img)) {
      memset(s->present, 0xFF, sizeof s->present);
      s->chunks_missing = 0;
      s->transfer = EOB_TRANSFER_VERIFIED;
      return EOB_OK;
    }
    {
      eob_slot_table t = s->table;
      t.state = EOB_BOOT_CONFIRMED;
      t.trial = EOB_SLOT_NONE;
      if (!write_table(s, t)) return fail(s, EOB_ERR_FLASH);
    }
  }
  if (read_header(s, s->target, &have) && same_image(&have, &img)) { /* resume */
    if (!scan(s)) return fail(s, EOB_ERR_FLASH);
    s->transfer = EOB_TRANSFER_RECEIVING;
    return EOB_OK;
  }
  for (off = 0; off < s->geo.header_size + align_up(img.image_size, s->geo.erase_size); off += s->geo.erase_size)
    if (!s->hal->flash_erase(s->hal->ctx, eob_slots_region(s->target), off, s->geo.erase_size))
      return fail(s, EOB_ERR_FLASH);
  if (!write_header(s, s->target, &img)) return fail(s, EOB_ERR_FLASH);
  memset(s->present, 0, sizeof s->present);
  s->chunks_missing = s->chunks_total;
  s->transfer = EOB_TRANSFER_RECEIVING;
  return EOB_OK;
}

eob_err eob_slots_chunk(eob_slots *s, const eob_model_chunk *c, uint32_t *missing) {
  const uint8_t region = eob_slots_region(s->target);
  uint8_t entry[8];
  uint32_t crc;
  program_result r;
  *missing = s->chunks_missing;
  if (s->transfer == EOB_TRANSFER_NONE || c->tag != eob_transfer_tag(s->image.sha256))
    return fail(s, EOB_ERR_NO_TRANSFER);
  if (c->index >= s->chunks_total || c->data.len != chunk_len(&s->image, c->index) || c->data.data == NULL)
    return fail(s, EOB_ERR_CHUNK_INDEX);
  if (eob_crc32(c->data.data, c->data.len) != c->crc32) return fail(s, EOB_ERR_CHUNK_CRC);
  if (is_present(s, c->index)) return EOB_OK; /* a repeat */
  r = program(s, region, s->geo.header_size + c->index * s->image.chunk_size, c->data.data, c->data.len);
  if (r == PROGRAM_OK) {
    memset(entry, 0xFF, sizeof entry);
    put32(entry, entry_value(c->crc32));
    r = program(s, region, entries_offset(s) + c->index * entry_stride(s), entry, entry_stride(s));
  }
  if (r == PROGRAM_DIRTY) return forget(s, EOB_ERR_FLASH);
  if (r != PROGRAM_OK) return fail(s, EOB_ERR_FLASH);
  if (!flash_digest(s, region, s->geo.header_size + c->index * s->image.chunk_size, c->data.len, &crc, NULL) ||
      crc != c->crc32)
    return forget(s, EOB_ERR_FLASH);
  set_present(s, c->index);
  *missing = --s->chunks_missing;
  return EOB_OK;
}

eob_err eob_slots_commit(eob_slots *s, const uint8_t sha256[EOB_SHA256_SIZE]) {
  eob_slot_table t;
  if (s->transfer == EOB_TRANSFER_NONE || memcmp(sha256, s->image.sha256, EOB_SHA256_SIZE) != 0)
    return fail(s, EOB_ERR_NO_TRANSFER);
  if (s->transfer == EOB_TRANSFER_VERIFIED) return EOB_OK;
  if (s->chunks_missing > 0) return fail(s, EOB_ERR_INCOMPLETE);
  if (!verify_image(s, s->target, &s->image)) return forget(s, EOB_ERR_HASH);
  t = s->table;
  t.state = EOB_BOOT_PENDING;
  t.trial = s->target;
  t.flags &= (uint8_t)~EOB_BOOT_FLAG_REVERTED;
  if (!write_table(s, t)) return fail(s, EOB_ERR_FLASH);
  s->transfer = EOB_TRANSFER_VERIFIED;
  s->last_error = EOB_OK;
  return EOB_OK;
}

void eob_slots_status(const eob_slots *s, eob_model_status *out) {
  uint32_t i = 0;
  memset(out, 0, sizeof *out);
  out->boot_state = s->table.state;
  out->running_slot = s->running;
  out->confirmed_slot = s->table.confirmed;
  out->trial_slot = s->table.trial;
  out->transfer = s->transfer;
  out->flags = (s->table.flags & EOB_BOOT_FLAG_REVERTED) ? EOB_STATUS_REVERTED : 0u;
  out->last_error = s->last_error;
  if (s->transfer == EOB_TRANSFER_NONE) return;
  memcpy(out->sha256, s->image.sha256, EOB_SHA256_SIZE);
  out->image_size = s->image.image_size;
  out->chunk_size = s->image.chunk_size;
  out->chunks_total = s->chunks_total;
  out->chunks_missing = s->chunks_missing;
  while (i < s->chunks_total) {
    uint32_t first;
    if (is_present(s, i)) {
      ++i;
      continue;
    }
    first = i;
    while (i < s->chunks_total && !is_present(s, i)) ++i;
    if (out->n_ranges == EOB_STATUS_MAX_RANGES) {
      out->flags |= EOB_STATUS_RANGES_TRUNCATED;
      break;
    }
    out->missing[out->n_ranges].first = first;
    out->missing[out->n_ranges].count = i - first;
    ++out->n_ranges;
  }
}
