/* Board self-test: boot, UART TX, RX interrupt path, exit code.
 *
 * Reads a 5-byte header from the host (u32 little-endian N, an exit code),
 * answers "tinyfed-selftest <board> ready\n", echoes the next N bytes back as
 * they arrive and exits with the code.  Logs how many times it slept (WFI).
 *
 * The host speaks first on purpose: pyserial's socket:// open() discards
 * whatever arrived before it returned (reset_input_buffer), and the guest
 * starts the moment the TCP connection is accepted. */
#include <stdint.h>

#include "selftest_util.h"

int main(void)
{
    tfd_port_init();
    uint8_t header[5];
    st_read_exact(header, sizeof header);
    st_write_str("tinyfed-selftest ");
    st_write_str(tfd_port_board_name());
    st_write_str(" ready\n");
    const uint32_t total = (uint32_t)header[0] | (uint32_t)header[1] << 8 |
                           (uint32_t)header[2] << 16 | (uint32_t)header[3] << 24;
    uint8_t buf[256];
    uint32_t done = 0;
    uint64_t sleeps = 0;
    while (done < total) {
        const uint32_t want = total - done < sizeof buf ? total - done : (uint32_t)sizeof buf;
        const size_t n = tfd_port_uart_read(buf, want);
        if (n == 0) {
            tfd_port_idle();
            sleeps++;
            continue;
        }
        tfd_port_uart_write(buf, n);
        done += (uint32_t)n;
    }
    st_log_u64("echoed", done);
    st_log_u64("idle_calls", sleeps);
    st_log_u64("millis", tfd_port_millis());
    return header[4];
}
