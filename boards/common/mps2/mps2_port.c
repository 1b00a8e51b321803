/* tinyfed boards — port.h for the QEMU MPS2 machines (shared part).
 *
 * UART: CMSDK APB UART0, RX interrupt into a ring, TX sleeps while full.
 * Ticks: SysTick on the processor clock, 1 ms, started right after the UART
 *   (QEMU's main loop needs the timer to notice received bytes promptly).
 * Random: common/emu/emu_random.c — NOT a secure RNG (no hardware RNG on these machines).
 * Storage: common/emu/emu_storage.c — reserved end of "flash", optional host-file
 *   backing, optional erase-stall emulation (--storage-stall-ms=N).
 * Log / exit: semihosting (SYS_WRITE0 / SYS_EXIT_EXTENDED). */
#include "mps2_port.h"

#include "board_common.h"
#include "cmsdk_uart.h"
#include "cortex_m.h"
#include "emu_random.h"
#include "emu_storage.h"
#include "semihosting.h"
#include "systick.h"
#include "tfd/port.h"

/* The UART's clock (board.json defines TFD_BOARD_UART_PCLK_HZ where it is not
 * the core clock: mps3-an547's peripherals run at 25 MHz, its core at 32 MHz). */
#ifndef TFD_BOARD_UART_PCLK_HZ
#define TFD_BOARD_UART_PCLK_HZ TFD_BOARD_CPU_HZ
#endif

/* Erase unit of the emulated flash ("flash" pages of 4 KiB). */
#define TFD_EMU_STORAGE_PAGE 4096u

static int s_initialised;

void tfd_port_init(void)
{
    if (s_initialised) return;
    s_initialised = 1;
    tfd_cmsdk_uart_init(TFD_BOARD_UART_BASE, TFD_BOARD_UART_PCLK_HZ, TFD_MPS2_BAUD,
                        TFD_BOARD_UART_RX_IRQ, TFD_BOARD_UART_TX_IRQ);
    tfd_systick_start(TFD_BOARD_CPU_HZ, 1000u);
    tfd_emu_storage_init(__tfd_storage_start, (size_t)(uintptr_t)__tfd_storage_size, TFD_EMU_STORAGE_PAGE);
    tfd_emu_storage_set_stall(tfd_cmsdk_uart_stall);
    tfd_emu_random_init();
}

int tfd_mps2_uart_irq(unsigned irq)
{
    if (irq == TFD_BOARD_UART_RX_IRQ) {
        tfd_cmsdk_uart_rx_isr();
        return 1;
    }
    if (irq == TFD_BOARD_UART_TX_IRQ) {
        tfd_cmsdk_uart_tx_isr();
        return 1;
    }
    return 0;
}

void tfd_port_uart_write(const uint8_t *data, size_t len)
{
    tfd_cmsdk_uart_write(data, len);
}

size_t tfd_port_uart_read(uint8_t *data, size_t cap)
{
    return tfd_cmsdk_uart_read(data, cap);
}

void tfd_port_idle(void)
{
    /* Masked check + WFI: a byte arriving between the check and the WFI
     * still wakes the core (WFI wakes on a pending interrupt). */
    const uint32_t primask = tfd_irq_save();
    if (tfd_cmsdk_uart_rx_empty()) tfd_wfi();
    tfd_irq_restore(primask);
}

uint32_t tfd_port_millis(void)
{
    return tfd_systick_millis();
}

tfd_status_t tfd_port_random(uint8_t *out, size_t len)
{
    return tfd_emu_random(out, len);
}

size_t tfd_port_storage_size(void)
{
    return tfd_emu_storage_size();
}

#ifdef TFD_BOARD_STORAGE_ERASE_BYTES /* board.json "storage_erase_bytes": the toolchain sizes the store with it */
_Static_assert(TFD_BOARD_STORAGE_ERASE_BYTES == TFD_EMU_STORAGE_PAGE, "board.json storage_erase_bytes disagrees with the port");
#endif

size_t tfd_port_storage_erase_unit(void)
{
    return TFD_EMU_STORAGE_PAGE;
}

uint32_t tfd_port_storage_busy_ms(size_t erase_bytes, size_t write_bytes)
{
    (void)write_bytes;
    return erase_bytes ? tfd_emu_storage_busy_ms() : 0u; /* RAM: no stall unless emulated */
}

tfd_status_t tfd_port_storage_read(uint32_t offset, void *out, size_t len)
{
    return tfd_emu_storage_read(offset, out, len);
}

tfd_status_t tfd_port_storage_erase(uint32_t offset, size_t len)
{
    return tfd_emu_storage_erase(offset, len);
}

tfd_status_t tfd_port_storage_write(uint32_t offset, const void *data, size_t len)
{
    return tfd_emu_storage_write(offset, data, len);
}

void tfd_port_log(const char *text)
{
    tfd_sh_write0(text);
}

void tfd_port_exit(int code)
{
    tfd_sh_exit(code);
}
