/* Board support for QEMU's mps2-an386 (Cortex-M4): UART0 output, a tick counter, the stack
 * high-water mark and a way out of the emulator. C99.
 *
 * UART0 is the CMSDK APB UART at 0x40004000; run QEMU with -nographic (or -serial stdio) to see
 * it, or -serial tcp:... for a socket. board_init() enables its transmitter and its receiver;
 * board_getc() polls the receiver (QEMU's CMSDK UART holds one byte and takes the next from its
 * chardev only once that one was read, so polling loses nothing: the sender waits). board_exit() asks the host to end the emulation through Arm semihosting (SYS_EXIT_EXTENDED,
 * so the status reaches QEMU's exit code; run with -semihosting-config enable=on,target=native)
 * and, when semihosting is off, requests a system reset (run with -no-reboot: QEMU then exits).
 *
 * board_ticks() reads the CMSDK dual timer (timer 1, 32-bit, free-running, counting down at the
 * 25 MHz peripheral clock): the difference of two reads is elapsed peripheral clock ticks. Under
 * QEMU that is emulated time, not the speed of any chip; with -icount it is a fixed function of
 * the number of instructions executed (see tools/cortexm.py). */

#ifndef EDGEOPS_BOARD_MPS2_AN386_H
#define EDGEOPS_BOARD_MPS2_AN386_H

#include <stddef.h>
#include <stdint.h>

#define BOARD_PCLK_HZ 25000000u

void board_init(void);
void board_putc(char c);
/* UART0 receive, never blocking: the byte waiting in the receive register, or -1 when none. */
int board_getc(void);
void board_puts(const char *s);
void board_put_hex(const uint8_t *bytes, size_t n);
void board_put_u32(uint32_t value);
uint32_t board_ticks(void);
void board_paint_stack(void);
uint32_t board_stack_used(void);
uint32_t board_dwt_cycles(void);
void board_dwt_start(void);
void board_fault(const char *name) __attribute__((noreturn));
void board_exit(int status) __attribute__((noreturn));
/* A system reset through SYSRESETREQ, whatever semihosting says: without -no-reboot QEMU restarts the
 * board (the ELF's segments are loaded again; memory outside them keeps its contents). */
void board_reset(void) __attribute__((noreturn));

#endif
