/* eob_hal.h: what the firmware_bridge library needs from a board, as a struct of function pointers.
 *
 * Fill one eob_hal per board (see ports/ and README.md) and pass it to eob_link_init() and
 * eob_slots_init(). Pointers a feature does not use may be NULL: the serial link needs write and read,
 * the model slots flash_read/erase/write, latency measurement micros. ctx is passed back to every call.
 */
#ifndef EOB_HAL_H_
#define EOB_HAL_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Flash regions: the slot table (two erase units) and the two model slots. */
enum { EOB_REGION_TABLE = 0, EOB_REGION_SLOT0 = 1, EOB_REGION_SLOT1 = 2 };

typedef struct eob_hal {
  void *ctx;
  /* Serial out: queue or send n bytes; the number accepted (fewer than n: the frame is counted as dropped). */
  size_t (*write)(void *ctx, const uint8_t *data, size_t n);
  /* Serial in, never blocking: up to n received bytes into data; the number read, 0 when none is waiting. */
  size_t (*read)(void *ctx, uint8_t *data, size_t n);
  /* A free-running microsecond clock (wraps at 2^32). */
  uint32_t (*micros)(void *ctx);
  /* Flash: offsets are relative to the region. erase takes whole erase units, write whole write units
   * (eob_flash_geometry), and a write unit is written at most once between erases. false on failure. */
  bool (*flash_read)(void *ctx, uint8_t region, uint32_t offset, uint8_t *data, uint32_t n);
  bool (*flash_erase)(void *ctx, uint8_t region, uint32_t offset, uint32_t n);
  bool (*flash_write)(void *ctx, uint8_t region, uint32_t offset, const uint8_t *data, uint32_t n);
} eob_hal;

#ifdef __cplusplus
}
#endif

#endif
