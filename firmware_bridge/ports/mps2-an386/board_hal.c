/* The firmware_bridge HAL for QEMU's mps2-an386: see board_hal.h. */

#include "board_hal.h"

#include <string.h>

#include "board.h"

extern uint8_t __eob_flash_start__[]; /* demo.ld */
extern uint8_t __stack_limit__;
extern uint8_t __stack_top__;
extern uint8_t __ram_end__; /* demo.ld */

#define FORMAT_MAGIC "EOB-MPS2-FLASH-1" /* 16 bytes: the region was formatted by this port */

static uint8_t *flash_base(void) { return __eob_flash_start__; }

/* Where a region starts in the flash model, and its size. */
static bool region_span(uint8_t region, uint32_t offset, uint32_t n, uint8_t **at)
{
    uint32_t start, size;
    switch (region) {
    case EOB_REGION_TABLE:
        start = BOARD_FLASH_ERASE;
        size = BOARD_FLASH_TABLE;
        break;
    case EOB_REGION_SLOT0:
        start = BOARD_FLASH_ERASE + BOARD_FLASH_TABLE;
        size = BOARD_FLASH_SLOT;
        break;
    case EOB_REGION_SLOT1:
        start = BOARD_FLASH_ERASE + BOARD_FLASH_TABLE + BOARD_FLASH_SLOT;
        size = BOARD_FLASH_SLOT;
        break;
    default:
        return false;
    }
    if (offset > size || n > size - offset) {
        return false;
    }
    *at = flash_base() + start + offset;
    return true;
}

static size_t hal_write(void *ctx, const uint8_t *data, size_t n)
{
    size_t i;
    (void)ctx;
    for (i = 0; i < n; i++) {
        board_putc((char)data[i]);
    }
    return n;
}

static size_t hal_read(void *ctx, uint8_t *data, size_t n)
{
    size_t i = 0;
    (void)ctx;
    while (i < n) {
        int c = board_getc();
        if (c < 0) {
            break;
        }
        data[i++] = (uint8_t)c;
    }
    return i;
}

static uint32_t hal_micros(void *ctx)
{
    board_hal_ctx *c = (board_hal_ctx *)ctx;
    uint32_t now = board_ticks();
    c->ticks += (uint32_t)(now - c->last_ticks);
    c->last_ticks = now;
    return (uint32_t)(c->ticks / (BOARD_PCLK_HZ / 1000000u));
}

static bool hal_flash_read(void *ctx, uint8_t region, uint32_t offset, uint8_t *data, uint32_t n)
{
    uint8_t *at;
    (void)ctx;
    if (!region_span(region, offset, n, &at)) {
        return false;
    }
    memcpy(data, at, n);
    return true;
}

static bool hal_flash_erase(void *ctx, uint8_t region, uint32_t offset, uint32_t n)
{
    uint8_t *at;
    (void)ctx;
    if (offset % BOARD_FLASH_ERASE != 0u || n % BOARD_FLASH_ERASE != 0u || !region_span(region, offset, n, &at)) {
        return false;
    }
    memset(at, 0xFF, n);
    return true;
}

static bool hal_flash_write(void *ctx, uint8_t region, uint32_t offset, const uint8_t *data, uint32_t n)
{
    uint8_t *at;
    uint32_t i;
    (void)ctx;
    if (offset % BOARD_FLASH_WRITE != 0u || n % BOARD_FLASH_WRITE != 0u || !region_span(region, offset, n, &at)) {
        return false;
    }
    for (i = 0; i < n; i++) {
        if (at[i] != 0xFFu) {
            return false; /* NOR: a write unit is programmed once between erases */
        }
    }
    memcpy(at, data, n);
    return true;
}

void board_hal_init(eob_hal *hal, board_hal_ctx *ctx, eob_flash_geometry *geo)
{
    uint8_t *base = flash_base();
    memset(ctx, 0, sizeof *ctx);
    ctx->last_ticks = board_ticks();
    if (memcmp(base, FORMAT_MAGIC, 16) != 0) {
        /* power-on: QEMU's RAM is zeros; erased flash is 0xFF */
        memset(base, 0xFF, BOARD_FLASH_SIZE);
        memcpy(base, FORMAT_MAGIC, 16);
        ctx->flash_formats = 1;
    }
    memset(hal, 0, sizeof *hal);
    hal->ctx = ctx;
    hal->write = hal_write;
    hal->read = hal_read;
    hal->micros = hal_micros;
    hal->flash_read = hal_flash_read;
    hal->flash_erase = hal_flash_erase;
    hal->flash_write = hal_flash_write;
    geo->erase_size = BOARD_FLASH_ERASE;
    geo->write_size = BOARD_FLASH_WRITE;
    geo->slot_size = BOARD_FLASH_SLOT;
    geo->header_size = BOARD_FLASH_SLOT_HEADER;
}

uint32_t board_ram_free(void *ctx)
{
    (void)ctx;
    uint32_t stack = (uint32_t)(&__stack_top__ - &__stack_limit__);
    return (uint32_t)(&__ram_end__ - &__stack_top__) + (stack - board_stack_used());
}
