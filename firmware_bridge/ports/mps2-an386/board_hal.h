/* board_hal.h: the firmware_bridge HAL (eob_hal) for QEMU's mps2-an386: UART0, the dual timer and a
 * flash model that survives a system reset. C99.
 *
 * Serial: write polls UART0's transmitter byte by byte; read drains UART0's receive register (one byte
 * deep in QEMU, which takes the next byte from its chardev only once that one was read: no byte is lost
 * however long the firmware is away, the sender waits).
 *
 * Clock: micros counts the 25 MHz dual timer in a 64-bit total kept in the context (so call it at least
 * once every 171 s, the 32-bit timer's wrap) and returns total / 25, wrapping at 2^32 µs like the HAL asks.
 *
 * Flash: BOARD_FLASH_SIZE bytes at __eob_flash_start__ (demo.ld puts it at 0x21000000, the board's PSRAM,
 * which QEMU can back with a file: `make emulate FLASH=file`) hold, in order, a format record (one erase
 * unit), the slot table (two erase units) and the two slots. It behaves like NOR flash: erase sets whole
 * BOARD_FLASH_ERASE units to 0xFF, write programs whole BOARD_FLASH_WRITE units that must be blank (false
 * otherwise), read is free. No ELF segment covers it, so QEMU's loader leaves it alone when it reloads the
 * image at a system reset: what was written survives RESET (SYSRESETREQ) and QEMU's system_reset, and with
 * a file behind it the end of the QEMU process too (a power cut). New memory is zeros, not 0xFF:
 * board_hal_init() formats the region (all 0xFF, then the format record) when the record is missing.
 */
#ifndef EDGEOPS_BOARD_HAL_MPS2_AN386_H
#define EDGEOPS_BOARD_HAL_MPS2_AN386_H

#include <stdbool.h>
#include <stdint.h>

#include "eob_hal.h"
#include "eob_slots.h"

#define BOARD_FLASH_ERASE 2048u /* erase unit */
#define BOARD_FLASH_WRITE 8u    /* write unit */
#define BOARD_FLASH_TABLE (2u * BOARD_FLASH_ERASE)
#define BOARD_FLASH_SLOT_HEADER 4096u
#define BOARD_FLASH_SLOT (32u * 1024u)
#define BOARD_FLASH_SIZE (BOARD_FLASH_ERASE + BOARD_FLASH_TABLE + 2u * BOARD_FLASH_SLOT)

typedef struct {
    uint32_t last_ticks;
    uint64_t ticks;        /* timer ticks since board_hal_init */
    uint32_t flash_formats; /* 1 when board_hal_init found no format record (a power-on) */
} board_hal_ctx;

/* Fills hal (write, read, micros, flash) and geo; formats the flash region on its first use. */
void board_hal_init(eob_hal *hal, board_hal_ctx *ctx, eob_flash_geometry *geo);

/* RAM nothing uses: above the stack to the end of SSRAM2&3, and the stack below its high-water mark. */
uint32_t board_ram_free(void *ctx);

#endif
