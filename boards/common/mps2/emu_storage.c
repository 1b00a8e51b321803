/* tinyfed boards — emulated flash storage with optional host-file backing
 * (see emu_storage.h). */
#include "emu_storage.h"

#include <string.h>

#include "board_common.h"
#include "semihosting.h"

static int s_file = -1;

static uint8_t *region(void)
{
    return __tfd_storage_start;
}

size_t tfd_emu_storage_size(void)
{
    return (size_t)(uintptr_t)__tfd_storage_size;
}

int tfd_emu_storage_file_backed(void)
{
    return s_file >= 0;
}

static int in_bounds(uint32_t offset, size_t len)
{
    const size_t size = tfd_emu_storage_size();
    return offset <= size && len <= size - offset;
}

static tfd_status_t write_through(uint32_t offset, size_t len)
{
    if (s_file < 0 || len == 0) return TFD_OK;
    TFD_ENSURE(tfd_sh_seek(s_file, offset) == 0, TFD_ERR_STORAGE);
    TFD_ENSURE(tfd_sh_write(s_file, region() + offset, len) == 0, TFD_ERR_STORAGE);
    return TFD_OK;
}

void tfd_emu_storage_init(void)
{
    const size_t size = tfd_emu_storage_size();
    char path[200];
    s_file = -1;
    if (tfd_sh_cmdline_value("storage", path, sizeof path) > 0) {
        int fd = tfd_sh_open(path, TFD_SH_MODE_RPLUSB);
        if (fd >= 0 && tfd_sh_flen(fd) == (int32_t)size && tfd_sh_read(fd, region(), size) == 0) {
            s_file = fd;
            return;
        }
        if (fd >= 0) (void)tfd_sh_close(fd);
        fd = tfd_sh_open(path, TFD_SH_MODE_WPLUSB); /* create / truncate */
        if (fd >= 0) s_file = fd;
    }
    memset(region(), 0xFF, size);
    if (write_through(0, size) != TFD_OK) {
        (void)tfd_sh_close(s_file);
        s_file = -1;
    }
}

tfd_status_t tfd_emu_storage_read(uint32_t offset, void *out, size_t len)
{
    TFD_ENSURE(out != NULL || len == 0, TFD_ERR_ARG);
    TFD_ENSURE(in_bounds(offset, len), TFD_ERR_ARG);
    memcpy(out, region() + offset, len);
    return TFD_OK;
}

tfd_status_t tfd_emu_storage_erase(uint32_t offset, size_t len)
{
    TFD_ENSURE(in_bounds(offset, len), TFD_ERR_ARG);
    TFD_ENSURE(offset % TFD_EMU_STORAGE_PAGE == 0 && len % TFD_EMU_STORAGE_PAGE == 0,
               TFD_ERR_ARG);
    memset(region() + offset, 0xFF, len);
    return write_through(offset, len);
}

tfd_status_t tfd_emu_storage_write(uint32_t offset, const void *data, size_t len)
{
    TFD_ENSURE(data != NULL || len == 0, TFD_ERR_ARG);
    TFD_ENSURE(in_bounds(offset, len), TFD_ERR_ARG);
    const uint8_t *src = data;
    uint8_t *dst = region() + offset;
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
