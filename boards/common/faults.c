/* tinyfed boards — default fault handlers: report through tfd_port_log, then
 * stop with tfd_port_exit(128 + exception number).  Under QEMU the exit code
 * reaches the host (semihosting); on a real board tfd_port_exit halts. */
#include <stdint.h>
#include <string.h>

#include "board_common.h"
#include "cortex_m.h"
#include "tfd/port.h"
#include "vectors.h"

void tfd_fault_report(const uint32_t *frame) __attribute__((noreturn, used));

/* Lift the stack guard first (the handler may be running on it after a stack
 * overflow), then pass the stacked frame to tfd_fault_report. */
#if defined(__ARM_ARCH_8M_MAIN__)
#define TFD_GUARD_OFF_ "movs r0, #0\n\tmsr msplim, r0\n\t"
#elif defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_7M__)
#define TFD_GUARD_OFF_ "movw r0, #0xED94\n\tmovt r0, #0xE000\n\tmovs r1, #0\n\tstr r1, [r0]\n\tdsb\n\tisb\n\t"
#else
#define TFD_GUARD_OFF_ ""
#endif

#define TFD_FAULT_HANDLER_(name)                                                \
    __attribute__((naked)) void name(void)                                      \
    {                                                                           \
        __asm volatile(TFD_GUARD_OFF_                                           \
                       "tst lr, #4\n\t"                                         \
                       "ite eq\n\t"                                             \
                       "mrseq r0, msp\n\t"                                      \
                       "mrsne r0, psp\n\t"                                      \
                       "b tfd_fault_report\n\t");                               \
    }

TFD_FAULT_HANDLER_(NMI_Handler)
TFD_FAULT_HANDLER_(HardFault_Handler)
TFD_FAULT_HANDLER_(MemManage_Handler)
TFD_FAULT_HANDLER_(BusFault_Handler)
TFD_FAULT_HANDLER_(UsageFault_Handler)
TFD_FAULT_HANDLER_(SecureFault_Handler)
TFD_FAULT_HANDLER_(Unexpected_Handler)

static const char *exception_name(uint32_t n)
{
    switch (n) {
    case 2: return "NMI";
    case 3: return "HardFault";
    case 4: return "MemManage";
    case 5: return "BusFault";
    case 6: return "UsageFault";
    case 7: return "SecureFault";
    case 11: return "SVCall";
    case 12: return "DebugMonitor";
    case 14: return "PendSV";
    default: return "exception";
    }
}

static void append(char *buf, size_t cap, const char *text)
{
    size_t len = strlen(buf);
    while (*text && len + 1 < cap) buf[len++] = *text++;
    buf[len] = '\0';
}

static void append_hex(char *buf, size_t cap, const char *label, uint32_t value)
{
    char hex[9];
    tfd_board_hex32(value, hex);
    append(buf, cap, label);
    append(buf, cap, "0x");
    append(buf, cap, hex);
}

/* `frame` is the hardware-stacked r0-r3, r12, lr, pc, xpsr. */
void tfd_fault_report(const uint32_t *frame)
{
    const uint32_t n = tfd_ipsr() & 0x1FFu;
    char msg[160] = "tinyfed: fatal ";
    append(msg, sizeof msg, exception_name(n));
    append_hex(msg, sizeof msg, " pc=", frame[6]);
    append_hex(msg, sizeof msg, " lr=", frame[5]);
    append_hex(msg, sizeof msg, " cfsr=", SCB_CFSR);
    append_hex(msg, sizeof msg, " hfsr=", SCB_HFSR);
    append_hex(msg, sizeof msg, " bfar=", SCB_BFAR);
    append(msg, sizeof msg, "\n");
    tfd_port_log(msg);
    tfd_port_exit(TFD_EXIT_FAULT_BASE + (int)(n < 16 ? n : 0));
}

void tfd_board_fatal(const char *what, int code)
{
    char msg[120] = "tinyfed: fatal: ";
    append(msg, sizeof msg, what);
    append_hex(msg, sizeof msg, " ipsr=", tfd_ipsr());
    append(msg, sizeof msg, "\n");
    tfd_port_log(msg);
    tfd_port_exit(code);
}

void tfd_board_hex32(uint32_t value, char out[9])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 7; i >= 0; --i) {
        out[i] = digits[value & 0xFu];
        value >>= 4;
    }
    out[8] = '\0';
}

size_t tfd_board_u64_dec(uint64_t value, char out[21])
{
    char tmp[21];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(value % 10u));
        value /= 10u;
    } while (value != 0u);
    for (size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}
