/* The firmware_bridge demo firmware on QEMU's mps2-an386: the portable demo application (app/eob_demo.h:
 * the digits model on its built-in samples, the serial link, model slots) on this board's HAL.
 *
 * UART0 carries the link (run with -serial tcp:...: `make -C firmware_bridge emulate PORT=N`), the dual
 * timer the clock, the PSRAM at 0x21000000 the flash (board_hal.h), SYSRESETREQ the RESET. */

#include <stdint.h>

#include "board.h"
#include "board_hal.h"
#include "eob_demo.h"

#ifndef DEMO_DEVICE_ID
#define DEMO_DEVICE_ID "mps2-an386"
#endif
#ifndef DEMO_FIRMWARE_VERSION
#define DEMO_FIRMWARE_VERSION "eob-demo-mps2-1"
#endif

static eob_demo demo;
static eob_hal hal;
static board_hal_ctx hal_ctx;

static void reset(void *ctx)
{
    (void)ctx;
    board_reset();
}

int main(void)
{
    eob_flash_geometry geo;
    eob_demo_board brd = {0};
    eob_demo_config cfg = {0};

    board_init();
    board_hal_init(&hal, &hal_ctx, &geo);
    brd.ram_free = board_ram_free;
    brd.reset = reset;
    cfg.device_id = DEMO_DEVICE_ID;
    cfg.firmware_version = DEMO_FIRMWARE_VERSION;
    cfg.loop_ms = 200;      /* 5 inferences a second on the built-in samples */
    cfg.telemetry_ms = 1000;
    cfg.health_min_correct = DIGITS_SAMPLE_COUNT * 8u / 10u;
    /* the timer follows the host's clock under QEMU (no -icount): a loaded host stretches a run, so the
     * bound is loose here; a board would set its real budget */
    cfg.health_max_latency_us = 1000000u;
    if (!eob_demo_init(&demo, &hal, &geo, &brd, &cfg)) {
        return 2;
    }
    for (;;) {
        if (!eob_demo_step(&demo)) {
            board_reset();
        }
    }
}
