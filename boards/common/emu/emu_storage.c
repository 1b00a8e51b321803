/* tinyfed boards — emulated flash storage with optional host-file backing and
 * erase-stall emulation (see emu_storage.h). */
#include "emu_storage.h"

#include <string.h>

#include "board_common.h"
#include "semihosting.h"

static uint8_t *s_region;
static size_t s_size;
static size_t s_unit = 1;
static int s_file = -1;
static uint32_t s_stall_ms;
static tfd_emu_stall_fn s_stall;

size_t tfd_emu_storage_size(void)
{
    return s_size;
}

size_t tfd_emu_storage_erase_unit(void)
{
    return s_unit;
}

uint8_t *tfd_emu_storage_region(void)
{
    return s_region;
}

int tfd_emu_storage_file_backed(void)
{
    return s_file >= 0;
}

uint32_t tfd_emu_storage_busy_ms(void)
{
    return s_stall ? s_stall_ms : 0u;
}

void tfd_emu_storage_set_stall(tfd_emu_stall_fn stall)
{
    s_stall = stall;
}

static int in_bounds(uint32_t offset, size_t len)
{
    return s_region != NULL && offset <= s_size && len <= s_size - offset;
}

static tfd_status_t write_through(uint32_t offset, size_t len)
{
    if (s_file < 0 || len == 0) return TFD_OK;
    TFD_ENSURE(tfd_sh_seek(s_file, offset) == 0, TFD_ERR_STORAGE);
    TFD_ENSURE(tfd_sh_write(s_file, s_region + offset, len) == 0, TFD_ERR_STORAGE);
    return TFD_OK;
}

static uint32_t parse_u32(const char *text)
{
    uint32_t v = 0;
    for (const char *p = text; *p >= '0' && *p <= '9' && v < 100000000u; ++p) v = v * 10u + (uint32_t)(*p - '0');
    return v;
}

void tfd_emu_storage_init(uint8_t *region, size_t size, size_t erase_unit)
{
    char path[200];
    s_region = region;
    s_size = size;
    s_unit = erase_unit ? erase_unit : 1;
    s_file = -1;
    s_stall_ms = 0;
    if (tfd_sh_cmdline_value("storage-stall-ms", path, sizeof path) > 0) s_stall_ms = parse_u32(path);
    if (tfd_sh_cmdline_value("storage", path, sizeof path) > 0) {
        int fd = tfd_sh_open(path, TFD_SH_MODE_RPLUSB);
        if (fd >= 0 && tfd_sh_flen(fd) == (int32_t)size && tfd_sh_read(fd, region, size) == 0) {
            s_file = fd;
            return;
        }
        if (fd >= 0) (void)tfd_sh_close(fd);
        fd = tfd_sh_open(path, TFD_SH_MODE_WPLUSB); /* create / truncate */
        if (fd >= 0) s_file = fd;
    }
    memset(region, 0xFF, size);
    if (write_through(0, size) != TFD_OK) {
        (void)tfd_sh_close(s_file);
        s_file = -1;
    }
}

tfd_status_t tfd_emu_storage_read(uint32_t offset, void *out, size_t len)
{
    TFD_ENSURE(out != NULL || len == 0, TFD_ERR_ARG);
    TFD_ENSURE(in_bounds(offset, len), TFD_ERR_ARG);
    memcpy(out, s_region + offset, len);
    return TFD_OK;
}

tfd_status_t tfd_emu_storage_erase(uint32_t offset, size_t len)
{
    TFD_ENSURE(in_bounds(offset, len), TFD_ERR_ARG);
    TFD_ENSURE(offset % s_unit == 0 && len % s_unit == 0, TFD_ERR_ARG);
    memset(s_region + offset, 0xFF, len);
    if (s_stall && s_stall_ms) {
        const uint32_t lost = s_stall(s_stall_ms);
        tfd_board_log_u64("storage_stall_ms", s_stall_ms);
        tfd_board_log_u64("storage_stall_lost_bytes", lost);
    }
    return write_through(offset, len);
}

tfd_status_t tfd_emu_storage_write(uint32_t offset, const void *data, size_t len)
{
    TFD_ENSURE(data != NULL || len == 0, TFD_ERR_ARG);
    TFD_ENSURE(in_bounds(offset, len), TFD_ERR_ARG);
    const uint8_t *src = data;
    uint8_t *dst = s_region + offset;
    /* NOR flash: programming only clears bits.  A write that needs a 0 -> 1
     * transition fails (TFD_ERR_STORAGE) and changes nothing, as the real
     * ports' program-verify does. */
    for (size_t i = 0; i < len; ++i) {
        TFD_ENSURE((dst[i] & src[i]) == src[i], TFD_ERR_STORAGE);
    }
    memcpy(dst, src, len);
    TFD_TRY(write_through(offset, len));
    return TFD_OK;
}
