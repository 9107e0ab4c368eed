/* Startup for QEMU's mps2-an386 (Cortex-M4): the vector table, the reset handler and the fault
 * handlers. C99, no CMSIS needed.
 *
 * Reset: enable the FPU when the build uses it, copy .data from CODE to RAM, zero .bss, paint
 * the stack (board_stack_used() reads the high-water mark), call main(), then board_exit()
 * with main's return value. A fault prints its name over UART0 and exits with status 3. */

#include <stdint.h>
#include <string.h>

#include "board.h"

extern uint32_t __data_load__;
extern uint32_t __data_start__;
extern uint32_t __data_end__;
extern uint32_t __bss_start__;
extern uint32_t __bss_end__;
extern uint32_t __stack_top__;

int main(void);
void Reset_Handler(void);
void Default_Handler(void);
void HardFault_Handler(void);
void MemManage_Handler(void);
void BusFault_Handler(void);
void UsageFault_Handler(void);

/* An entry is the initial stack pointer (an object address) or a handler (a function address);
 * a union keeps both without converting one pointer kind into the other. */
typedef union {
    void (*handler)(void);
    uint32_t *stack;
} vector_entry;

#define VECTOR_COUNT (16 + 32) /* the core's 16 and the AN386's 32 external interrupts */

__attribute__((section(".vectors"), used))
const vector_entry board_vectors[VECTOR_COUNT] = {
    {.stack = &__stack_top__},
    {.handler = Reset_Handler},
    {.handler = Default_Handler},    /* NMI */
    {.handler = HardFault_Handler},
    {.handler = MemManage_Handler},
    {.handler = BusFault_Handler},
    {.handler = UsageFault_Handler},
    {.handler = 0}, {.handler = 0}, {.handler = 0}, {.handler = 0}, /* reserved */
    {.handler = Default_Handler},    /* SVCall */
    {.handler = Default_Handler},    /* DebugMonitor */
    {.handler = 0},                  /* reserved */
    {.handler = Default_Handler},    /* PendSV */
    {.handler = Default_Handler},    /* SysTick */
    /* IRQ 0..31: nothing is enabled, so none is taken; a stray one lands in Default_Handler */
    {.handler = Default_Handler}, {.handler = Default_Handler}, {.handler = Default_Handler},
    {.handler = Default_Handler}, {.handler = Default_Handler}, {.handler = Default_Handler},
    {.handler = Default_Handler}, {.handler = Default_Handler}, {.handler = Default_Handler},
    {.handler = Default_Handler}, {.handler = Default_Handler}, {.handler = Default_Handler},
    {.handler = Default_Handler}, {.handler = Default_Handler}, {.handler = Default_Handler},
    {.handler = Default_Handler}, {.handler = Default_Handler}, {.handler = Default_Handler},
    {.handler = Default_Handler}, {.handler = Default_Handler}, {.handler = Default_Handler},
    {.handler = Default_Handler}, {.handler = Default_Handler}, {.handler = Default_Handler},
    {.handler = Default_Handler}, {.handler = Default_Handler}, {.handler = Default_Handler},
    {.handler = Default_Handler}, {.handler = Default_Handler}, {.handler = Default_Handler},
    {.handler = Default_Handler}, {.handler = Default_Handler},
};

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

void Reset_Handler(void)
{
#if defined(__ARM_FP)
    /* CP10 and CP11 full access, before any floating-point instruction runs */
    SCB_CPACR |= (0xFu << 20);
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    {
        const uint32_t *src = &__data_load__;
        uint32_t *dst = &__data_start__;
        while (dst < &__data_end__) {
            *dst++ = *src++;
        }
        for (dst = &__bss_start__; dst < &__bss_end__; dst++) {
            *dst = 0;
        }
    }
    board_paint_stack();
    board_exit(main());
}

void Default_Handler(void) { board_fault("unexpected interrupt"); }
void HardFault_Handler(void) { board_fault("HardFault"); }
void MemManage_Handler(void) { board_fault("MemManage"); }
void BusFault_Handler(void) { board_fault("BusFault"); }
void UsageFault_Handler(void) { board_fault("UsageFault"); }
