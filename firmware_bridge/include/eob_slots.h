/* eob_slots.h: two model slots and a power-cut-safe slot table, MCUboot-style (WIRE.md, "Model slots").
 *
 * A new model goes into the slot that is not confirmed, chunk by chunk (CRC per chunk, resumable after a
 * reset: MODEL_OFFER again and the status lists the missing chunks), is checked whole (SHA-256), then
 * marked PENDING. The next start (eob_slots_boot) runs it in TESTING; the firmware calls eob_slots_confirm
 * after its own health check or eob_slots_revert when the check fails, and a start while TESTING reverts.
 * The table is written before anything else changes, so a power cut at any byte leaves it consistent.
 *
 * Everything goes through eob_hal's flash functions; no malloc, no globals. Functions return EOB_OK or an
 * eob_err the firmware can send back in a NACK (eob_link_handle_model does all of that).
 */
#ifndef EOB_SLOTS_H_
#define EOB_SLOTS_H_

#include <stdbool.h>
#include <stdint.h>

#include "eob_config.h"
#include "eob_hal.h"
#include "eob_msg.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EOB_SLOT_HEADER_BYTES 96 /* the slot header's record; chunk entries follow it */

typedef struct {
  uint32_t erase_size;  /* erase unit, bytes (a power of two) */
  uint32_t write_size;  /* write unit: 1, 2, 4 or 8 */
  uint32_t slot_size;   /* bytes of each slot region (a multiple of erase_size) */
  uint32_t header_size; /* slot header + chunk entries; the image starts here (a multiple of erase_size) */
} eob_flash_geometry;

/* The persisted slot table (WIRE.md layout; this is its RAM copy). */
typedef struct {
  uint32_t seq;
  uint8_t state;     /* eob_boot_state */
  uint8_t confirmed; /* 0, 1 or EOB_SLOT_NONE (the model built into the firmware) */
  uint8_t trial;     /* EOB_SLOT_NONE unless PENDING or TESTING */
  uint8_t flags;     /* EOB_BOOT_FLAG_REVERTED */
  uint32_t trials;   /* starts into a trial image so far */
} eob_slot_table;

/* A slot's image as its header describes it. */
typedef struct {
  uint32_t image_size;
  uint16_t chunk_size;
  uint8_t format;
  uint8_t sha256[EOB_SHA256_SIZE];
  char name[EOB_NAME_MAX + 1];      /* NUL-terminated here */
  char version[EOB_VERSION_MAX + 1];
} eob_slot_image;

typedef struct {
  const eob_hal *hal;
  eob_flash_geometry geo;
  eob_slot_table table;
  uint8_t table_copy; /* the copy (0 or 1) holding the current record; the next goes to the other */
  uint8_t running;    /* the slot the firmware runs now (EOB_SLOT_NONE: built-in), set by eob_slots_boot */
  /* the transfer in progress */
  uint8_t transfer;   /* eob_transfer_state */
  uint8_t target;     /* the slot being written */
  uint16_t last_error;
  eob_slot_image image;
  uint32_t chunks_total, chunks_missing;
  uint8_t present[EOB_MAX_CHUNKS / 8];
} eob_slots;

/* Checks the geometry against the library's limits; reads nothing yet. false for a bad geometry. */
bool eob_slots_init(eob_slots *s, const eob_hal *hal, const eob_flash_geometry *geo);

/* At every start, before loading a model: reads the table, runs a PENDING image in TESTING (after checking
 * its SHA-256 again), reverts a TESTING one, and sets s->running. EOB_OK, or EOB_ERR_FLASH when the table
 * cannot be written (s->running is then the confirmed slot). */
eob_err eob_slots_boot(eob_slots *s);

/* The running trial image passed the firmware's health check: it becomes the confirmed one. */
eob_err eob_slots_confirm(eob_slots *s);
/* The running trial image failed its health check: back to the confirmed slot (load s->running again). */
eob_err eob_slots_revert(eob_slots *s);

/* Model transfer (MODEL_OFFER, MODEL_CHUNK, MODEL_COMMIT). chunk sets *missing to the chunks still
 * missing. An offer identical to the transfer in the target slot resumes it. */
eob_err eob_slots_offer(eob_slots *s, const eob_model_offer *offer);
eob_err eob_slots_chunk(eob_slots *s, const eob_model_chunk *chunk, uint32_t *missing);
eob_err eob_slots_commit(eob_slots *s, const uint8_t sha256[EOB_SHA256_SIZE]);
/* The MODEL_STATUS reply: state, the transfer and its missing chunk ranges. */
void eob_slots_status(const eob_slots *s, eob_model_status *out);

/* The image a slot holds (its header valid), for HELLO and for loading the model; false when none. With
 * verify, also its SHA-256 over the flash. */
bool eob_slots_image_info(const eob_slots *s, uint8_t slot, bool verify, eob_slot_image *out);
/* Where a slot's image starts in its region (the image is image_size bytes from there). */
uint32_t eob_slots_image_offset(const eob_slots *s);
/* The flash region of slot 0 or 1. */
uint8_t eob_slots_region(uint8_t slot);

#ifdef __cplusplus
}
#endif

#endif
