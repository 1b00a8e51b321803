/* tinyfed boards — port.h functions shared by the real boards (real_board.h). */
#include "real_board.h"

#include <string.h>

#include "board_common.h"
#include "cortex_m.h"
#include "itm.h"
#include "semihosting.h"
#include "tfd/port.h"

tfd_ring_t tfd_real_uart_rx;

size_t tfd_port_uart_read(uint8_t *data, size_t cap)
{
    return tfd_ring_get(&tfd_real_uart_rx, data, cap);
}

void tfd_port_idle(void)
{
    /* Masked check + WFI: a byte arriving in between still wakes the core. */
    const uint32_t primask = tfd_irq_save();
    if (tfd_ring_empty(&tfd_real_uart_rx)) tfd_wfi();
    tfd_irq_restore(primask);
}

/* ---- storage: the flash reserve at the end of the image's flash ------------- */

int tfd_real_storage_in_bounds(uint32_t offset, size_t len)
{
    const size_t size = tfd_port_storage_size();
    return offset <= size && len <= size - offset;
}

tfd_status_t tfd_real_storage_check_erase(uint32_t offset, size_t len)
{
    const size_t unit = tfd_port_storage_erase_unit();
    TFD_ENSURE(tfd_real_storage_in_bounds(offset, len), TFD_ERR_ARG);
    TFD_ENSURE(offset % unit == 0u && len % unit == 0u, TFD_ERR_ARG);
    return TFD_OK;
}

tfd_status_t tfd_real_storage_check_write(uint32_t offset, const void *data, size_t len)
{
    TFD_ENSURE(data != NULL || len == 0, TFD_ERR_ARG);
    TFD_ENSURE(tfd_real_storage_in_bounds(offset, len), TFD_ERR_ARG);
    const uint8_t *src = data;
    const volatile uint8_t *dst = tfd_real_storage_base() + offset;
    for (size_t i = 0; i < len; ++i) {
        TFD_ENSURE((dst[i] & src[i]) == src[i], TFD_ERR_STORAGE); /* needs an erase first */
    }
    return TFD_OK;
}

tfd_status_t tfd_port_storage_read(uint32_t offset, void *out, size_t len)
{
    TFD_ENSURE(out != NULL || len == 0, TFD_ERR_ARG);
    TFD_ENSURE(tfd_real_storage_in_bounds(offset, len), TFD_ERR_ARG);
    memcpy(out, (const uint8_t *)tfd_real_storage_base() + offset, len);
    return TFD_OK;
}

/* board.json "defines": the chip's worst-case erase time per erase unit and
 * program time per 32-bit word, from its datasheet. */
#ifndef TFD_BOARD_STORAGE_ERASE_MS
#error "TFD_BOARD_STORAGE_ERASE_MS (worst-case ms per erase unit) is not defined: board.json defines"
#endif
#ifndef TFD_BOARD_STORAGE_PROGRAM_US
#error "TFD_BOARD_STORAGE_PROGRAM_US (worst-case us per 32-bit word) is not defined: board.json defines"
#endif

uint32_t tfd_real_storage_busy_ms(size_t erase_bytes, size_t write_bytes)
{
    const size_t unit = tfd_port_storage_erase_unit();
    const uint64_t units = unit ? (erase_bytes + unit - 1u) / unit : 0u;
    const uint64_t words = (write_bytes + 3u) / 4u;
    const uint64_t ms = units * TFD_BOARD_STORAGE_ERASE_MS + (words * TFD_BOARD_STORAGE_PROGRAM_US + 999u) / 1000u;
    return ms > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)ms;
}

/* ---- log / exit: ITM (semihosting when the port says it runs under QEMU) ----------- */

void tfd_port_log(const char *text)
{
    if (tfd_board_semihosting()) {
        tfd_sh_write0(text);
        return;
    }
    tfd_itm_write(text);
}

void tfd_port_exit(int code)
{
    if (tfd_board_semihosting()) tfd_sh_exit(code);
    char msg[40] = "tinyfed: exit ";
    char num[21];
    tfd_board_u64_dec((uint64_t)(uint32_t)code, num);
    strcat(msg, num);
    strcat(msg, "\n");
    tfd_itm_write(msg);
    tfd_halt();
}
