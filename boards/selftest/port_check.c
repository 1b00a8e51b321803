/* Board self-test: storage, random, millis, memory report.
 *
 * Exit code 0 when every check passes; otherwise the number of the first
 * failed check (logged as "FAIL <n>: <what>").  With "--storage-phase=write"
 * it leaves a pattern in storage; with "--storage-phase=verify" it checks the
 * pattern is still there (the host restarts QEMU in between). */
#include <stdint.h>
#include <string.h>

#include "board_common.h"
#include "selftest_util.h"
#include "semihosting.h"
#include "tfd/port.h"

static int s_failed;

static void check(int cond, int n, const char *what)
{
    if (cond || s_failed) return;
    s_failed = n;
    tfd_port_log("FAIL ");
    st_log_u64(what, (uint64_t)n);
}

static const uint8_t kPattern[16] = {0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03,
                                     0x7f, 0x80, 0xfe, 0x55, 0xaa, 0x10, 0x20, 0x30};

int main(void)
{
    tfd_port_init();
    char phase[16] = "";
    (void)tfd_sh_cmdline_value("storage-phase", phase, sizeof phase);

    const size_t size = tfd_port_storage_size();
    const size_t unit = tfd_port_storage_erase_unit();
    uint8_t buf[64];
    st_log_u64("storage_size", size);
    st_log_u64("storage_erase_unit", unit);
    check(size >= 2 * unit && unit >= 4 && size % unit == 0, 1, "storage size");

    if (strcmp(phase, "verify") == 0) {
        check(tfd_port_storage_read((uint32_t)unit + 100, buf, sizeof kPattern) == TFD_OK, 40, "read");
        check(memcmp(buf, kPattern, sizeof kPattern) == 0, 41, "persisted pattern");
        return s_failed;
    }

    /* Erase semantics: whole erase units only, erased reads 0xFF. */
    check(tfd_port_storage_erase(0, unit) == TFD_OK, 2, "erase page");
    check(tfd_port_storage_erase(100, unit) == TFD_ERR_ARG, 3, "misaligned erase rejected");
    check(tfd_port_storage_erase(0, size + unit) == TFD_ERR_ARG, 4, "erase out of bounds");
    check(tfd_port_storage_read(0, buf, sizeof buf) == TFD_OK, 5, "read");
    int all_ff = 1;
    for (size_t i = 0; i < sizeof buf; ++i) all_ff &= buf[i] == 0xFF;
    check(all_ff, 6, "erased reads 0xFF");

    /* Program + read back, bounds. */
    check(tfd_port_storage_write(10, kPattern, sizeof kPattern) == TFD_OK, 7, "write");
    check(tfd_port_storage_read(10, buf, sizeof kPattern) == TFD_OK, 8, "read back");
    check(memcmp(buf, kPattern, sizeof kPattern) == 0, 9, "read back matches");
    check(tfd_port_storage_read((uint32_t)size - 4, buf, 8) == TFD_ERR_ARG, 10, "read past end");
    check(tfd_port_storage_write((uint32_t)size, kPattern, 1) == TFD_ERR_ARG, 11, "write past end");

    /* NOR semantics: programming cannot turn 0 bits back into 1. */
    const uint8_t ones[2] = {0xFF, 0xFF};
    check(tfd_port_storage_write(14, ones, 2) == TFD_ERR_STORAGE, 12, "write over programmed fails");
    check(tfd_port_storage_read(10, buf, sizeof kPattern) == TFD_OK, 13, "read");
    check(memcmp(buf, kPattern, sizeof kPattern) == 0, 14, "data kept after failed write");
    check(tfd_port_storage_erase(0, unit) == TFD_OK, 15, "erase again");
    check(tfd_port_storage_write(14, ones, 2) == TFD_OK, 16, "write after erase");

    if (strcmp(phase, "write") == 0) {
        check(tfd_port_storage_erase((uint32_t)unit, unit) == TFD_OK, 30, "erase page 1");
        check(tfd_port_storage_write((uint32_t)unit + 100, kPattern, sizeof kPattern) == TFD_OK, 31,
              "write pattern");
    }

    /* Random: two draws differ, not all zero; log 16 bytes for the host. */
    uint8_t r1[32], r2[32];
    check(tfd_port_random(r1, sizeof r1) == TFD_OK, 20, "random");
    check(tfd_port_random(r2, sizeof r2) == TFD_OK, 21, "random");
    check(memcmp(r1, r2, sizeof r1) != 0, 22, "random draws differ");
    char hex[9];
    char line[48] = "random=";
    for (int i = 0; i < 4; ++i) {
        tfd_board_hex32((uint32_t)r1[4 * i] << 24 | (uint32_t)r1[4 * i + 1] << 16 |
                            (uint32_t)r1[4 * i + 2] << 8 | r1[4 * i + 3],
                        hex);
        strcat(line, hex);
    }
    strcat(line, "\n");
    tfd_port_log(line);

    /* Millis advance while idle (SysTick wakes WFI). */
    const uint32_t t0 = tfd_port_millis();
    while (tfd_port_millis() - t0 < 20u) tfd_port_idle();
    const uint32_t t1 = tfd_port_millis();
    check(t1 - t0 >= 20u && t1 - t0 < 200u, 23, "millis while idle");

    tfd_board_memory_t mem;
    tfd_board_memory(&mem);
    st_log_u64("flash_size", mem.flash_size);
    st_log_u64("flash_used", mem.flash_used);
    st_log_u64("ram_size", mem.ram_size);
    st_log_u64("ram_used", mem.ram_used);
    st_log_u64("stack_size", mem.stack_size);
    check(mem.ram_used >= mem.stack_size && mem.ram_used <= mem.ram_size, 24, "memory report");
    check(mem.flash_used > 0 && mem.flash_used < mem.flash_size, 25, "memory report");

    if (!s_failed) tfd_port_log("port_check ok\n");
    return s_failed;
}
