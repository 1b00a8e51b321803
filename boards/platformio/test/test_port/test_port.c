/* On-target test (pio test -e mps2-an386): the port contract on the board.
 * Prints "test:<name>:PASS|FAIL" lines over semihosting (read by
 * ../test_custom_runner.py), then "tinyfed-test-done", and exits with the
 * number of failures (QEMU's exit code). */
#include <stdint.h>
#include <string.h>

#include "board_common.h"
#include "tfd/port.h"

static int g_failures;

static void report(const char *name, int ok)
{
    tfd_port_log("test:");
    tfd_port_log(name);
    tfd_port_log(ok ? ":PASS\n" : ":FAIL\n");
    if (!ok) g_failures++;
}

int main(void)
{
    tfd_port_init();
    report("board_name", strcmp(tfd_port_board_name(), TFD_BOARD_NAME) == 0);

    uint8_t a[32], b[32];
    report("random", tfd_port_random(a, sizeof a) == TFD_OK &&
                         tfd_port_random(b, sizeof b) == TFD_OK && memcmp(a, b, sizeof a) != 0);

    const uint8_t data[4] = {1, 2, 3, 4};
    uint8_t back[4] = {0};
    report("storage_erase", tfd_port_storage_erase(0, tfd_port_storage_erase_unit()) == TFD_OK);
    report("storage_write_read", tfd_port_storage_write(8, data, 4) == TFD_OK &&
                                     tfd_port_storage_read(8, back, 4) == TFD_OK &&
                                     memcmp(back, data, 4) == 0);
    report("storage_bounds",
           tfd_port_storage_read((uint32_t)tfd_port_storage_size(), back, 1) == TFD_ERR_ARG);

    const uint32_t t0 = tfd_port_millis();
    while (tfd_port_millis() - t0 < 5u) tfd_port_idle();
    report("millis_advance_in_idle", tfd_port_millis() - t0 >= 5u);

    tfd_board_memory_t mem;
    tfd_board_memory(&mem);
    report("memory_within_chip", mem.ram_used <= mem.ram_size && mem.flash_used < mem.flash_size);

    tfd_port_log("tinyfed-test-done\n");
    return g_failures;
}
