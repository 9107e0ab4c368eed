/* Board support for QEMU's mps2-an386: see board.h. */

#include "board.h"

/* CMSDK APB UART0 */
#define UART0_BASE 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART0_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(UART0_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(UART0_BASE + 0x08u))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0_BASE + 0x10u))
#define UART_STATE_TXFULL 0x1u
#define UART_STATE_RXFULL 0x2u
#define UART_CTRL_TXEN 0x1u
#define UART_CTRL_RXEN 0x2u

/* CMSDK APB dual timer, timer 1 */
#define TIMER1_BASE 0x40002000u
#define TIMER1_LOAD (*(volatile uint32_t *)(TIMER1_BASE + 0x00u))
#define TIMER1_VALUE (*(volatile uint32_t *)(TIMER1_BASE + 0x04u))
#define TIMER1_CTRL (*(volatile uint32_t *)(TIMER1_BASE + 0x08u))
#define TIMER_CTRL_ENABLE 0x80u
#define TIMER_CTRL_32BIT 0x02u

/* Core debug: DEMCR.TRCENA, DWT_CTRL.CYCCNTENA, DWT_CYCCNT */
#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)

/* Application interrupt and reset control: VECTKEY | SYSRESETREQ */
#define SCB_AIRCR (*(volatile uint32_t *)0xE000ED0Cu)
#define AIRCR_SYSRESETREQ 0x05FA0004u

#define STACK_PAINT 0xA5u

extern uint8_t __stack_limit__;

void board_init(void)
{
    UART_BAUDDIV = 16u; /* the smallest divider the CMSDK UART accepts */
    UART_CTRL = UART_CTRL_TXEN | UART_CTRL_RXEN;
    /* A read of DATA is what makes QEMU's CMSDK UART ask its chardev for input again: after a system
     * reset the UART had its receiver off, QEMU's main loop stopped polling the socket and would not look
     * at it again (nothing else wakes it), so received bytes would wait forever. The value is stale. */
    (void)UART_DATA;
    TIMER1_CTRL = 0u;
    TIMER1_LOAD = 0xFFFFFFFFu;
    TIMER1_CTRL = TIMER_CTRL_ENABLE | TIMER_CTRL_32BIT; /* free-running, no interrupt, no prescale */
}

void board_putc(char c)
{
    while (UART_STATE & UART_STATE_TXFULL) {
    }
    UART_DATA = (uint32_t)(unsigned char)c;
}

int board_getc(void)
{
    if (UART_STATE & UART_STATE_RXFULL) {
        return (int)(UART_DATA & 0xFFu);
    }
    return -1;
}

void board_puts(const char *s)
{
    while (*s) {
        board_putc(*s++);
    }
}

void board_put_hex(const uint8_t *bytes, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        board_putc(digits[bytes[i] >> 4]);
        board_putc(digits[bytes[i] & 0xFu]);
    }
}

void board_put_u32(uint32_t value)
{
    char buf[11];
    int i = 10;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0u);
    board_puts(&buf[i]);
}

uint32_t board_ticks(void)
{
    return 0xFFFFFFFFu - TIMER1_VALUE; /* the timer counts down; this counts up */
}

void board_dwt_start(void)
{
    DEMCR |= 1u << 24;
    DWT_CYCCNT = 0u;
    DWT_CTRL |= 1u;
}

uint32_t board_dwt_cycles(void)
{
    return DWT_CYCCNT;
}

/* Fill the stack below the caller's frame (less a margin for this function's own) with a pattern. */
void board_paint_stack(void)
{
    volatile uint8_t *p = &__stack_limit__;
    volatile uint8_t *end = (volatile uint8_t *)__builtin_frame_address(0) - 64;
    while (p < end) {
        *p++ = STACK_PAINT;
    }
}

/* Bytes of stack ever written since board_paint_stack(): the first byte that lost the pattern. */
uint32_t board_stack_used(void)
{
    extern uint8_t __stack_top__;
    const volatile uint8_t *p = &__stack_limit__;
    while (p < &__stack_top__ && *p == STACK_PAINT) {
        p++;
    }
    return (uint32_t)(&__stack_top__ - p);
}

static void semihost_exit(int status)
{
    /* SYS_EXIT_EXTENDED (0x20): r1 points to {ADP_Stopped_ApplicationExit, status} */
    volatile uint32_t block[2];
    register uint32_t r0 __asm__("r0") = 0x20u;
    register volatile uint32_t *r1 __asm__("r1") = block;
    block[0] = 0x20026u;
    block[1] = (uint32_t)status;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
}

static volatile int exiting = 0;

void board_fault(const char *name)
{
    if (!exiting) { /* when exiting, the fault is the semihosting call's own (semihosting off) */
        board_puts("\nFAULT ");
        board_puts(name);
        board_putc('\n');
    }
    board_exit(3);
}

void board_exit(int status)
{
    if (!exiting) {
        exiting = 1;
        board_puts("\nEXIT ");
        board_put_u32((uint32_t)status);
        board_puts("\n");
        semihost_exit(status);
    }
    /* no semihosting: a system reset, which QEMU turns into an exit under -no-reboot */
    board_reset();
}

void board_reset(void)
{
    __asm__ volatile("dsb" ::: "memory");
    SCB_AIRCR = AIRCR_SYSRESETREQ;
    __asm__ volatile("dsb" ::: "memory");
    for (;;) {
    }
}
