/* Test harness for a model function on QEMU's mps2-an386 (Cortex-M4).
 *
 * Runs  int HARNESS_INVOKE(const int8_t *input, int8_t *output, uint8_t *arena)  on each of the
 * HARNESS_SAMPLES inputs compiled in from harness_input.h (written by tools/cortexm.py) and reports
 * over UART0, one line each:
 *
 *   EDGEOPS-HARNESS 1 <samples> <input size> <output size> <arena size>
 *   DWT <cycles>                    DWT_CYCCNT across a short known loop (0: not emulated)
 *   BASE <ticks>                    timer ticks around a call of an empty function of the same type
 *   RUN <i> <return value> <ticks>  timer ticks around the call (see board.h)
 *   OUT <i> <output bytes as hex>
 *   STACK <bytes>                   the stack high-water mark (startup, main and the model)
 *   DONE
 *
 * and exits with 0 (the caller judges the return values). harness_input.h defines HARNESS_INVOKE,
 * HARNESS_SAMPLES, HARNESS_INPUT_SIZE, HARNESS_OUTPUT_SIZE, HARNESS_ARENA_SIZE (at least 1) and
 * harness_inputs[HARNESS_SAMPLES][HARNESS_INPUT_SIZE], and declares the model function. */

#include <stdint.h>

#include "board.h"
#include "harness_input.h"

static uint8_t harness_arena[HARNESS_ARENA_SIZE] __attribute__((aligned(16)));
static int8_t harness_output[HARNESS_OUTPUT_SIZE] __attribute__((aligned(16)));

static uint32_t dwt_probe(void)
{
    volatile uint32_t n = 0;
    uint32_t start;
    uint32_t i;
    board_dwt_start();
    start = board_dwt_cycles();
    for (i = 0; i < 100u; i++) {
        n += i;
    }
    return board_dwt_cycles() - start;
}

static int harness_noop(const int8_t *input, int8_t *output, uint8_t *arena) __attribute__((noinline));

static int harness_noop(const int8_t *input, int8_t *output, uint8_t *arena)
{
    (void)input;
    (void)output;
    (void)arena;
    return 0;
}

int main(void)
{
    uint32_t base;
    uint32_t i;
    board_init();
    board_puts("EDGEOPS-HARNESS 1 ");
    board_put_u32((uint32_t)HARNESS_SAMPLES);
    board_putc(' ');
    board_put_u32((uint32_t)HARNESS_INPUT_SIZE);
    board_putc(' ');
    board_put_u32((uint32_t)HARNESS_OUTPUT_SIZE);
    board_putc(' ');
    board_put_u32((uint32_t)HARNESS_ARENA_SIZE);
    board_puts("\nDWT ");
    board_put_u32(dwt_probe());
    base = board_ticks();
    (void)harness_noop(harness_inputs[0], harness_output, harness_arena);
    base = board_ticks() - base;
    board_puts("\nBASE ");
    board_put_u32(base);
    board_putc('\n');
    for (i = 0; i < (uint32_t)HARNESS_SAMPLES; i++) {
        uint32_t t0;
        uint32_t t1;
        int rc;
        t0 = board_ticks();
        rc = HARNESS_INVOKE(harness_inputs[i], harness_output, harness_arena);
        t1 = board_ticks();
        board_puts("RUN ");
        board_put_u32(i);
        board_putc(' ');
        board_puts(rc < 0 ? "-" : "");
        board_put_u32(rc < 0 ? (uint32_t)(-(rc + 1)) + 1u : (uint32_t)rc);
        board_putc(' ');
        board_put_u32(t1 - t0);
        board_puts("\nOUT ");
        board_put_u32(i);
        board_putc(' ');
        board_put_hex((const uint8_t *)harness_output, HARNESS_OUTPUT_SIZE);
        board_putc('\n');
    }
    board_puts("STACK ");
    board_put_u32(board_stack_used());
    board_puts("\nDONE\n");
    return 0;
}
