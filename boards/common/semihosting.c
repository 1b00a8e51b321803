/* tinyfed boards — ARM semihosting calls (see semihosting.h). */
#include "semihosting.h"

#include <string.h>

#if !defined(TFD_BOARD_SEMIHOSTING_RUNTIME)
int tfd_board_semihosting(void)
{
#if defined(TFD_BOARD_SEMIHOSTING)
    return 1;
#else
    return 0;
#endif
}
#endif

int32_t tfd_sh_call(uint32_t op, const void *arg)
{
    if (!tfd_board_semihosting()) return -1;
    register uint32_t r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

void tfd_sh_write0(const char *text)
{
    (void)tfd_sh_call(TFD_SH_SYS_WRITE0, text);
}

void tfd_sh_exit(int code)
{
    /* AArch32 SYS_EXIT only carries a reason code (QEMU: exit 0 or 1), so use
     * SYS_EXIT_EXTENDED whose block carries the subcode = exit status. */
    const uint32_t block[2] = {TFD_SH_ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    (void)tfd_sh_call(TFD_SH_SYS_EXIT_EXTENDED, block);
    /* Fallback for hosts without the extension: plain SYS_EXIT. */
    (void)tfd_sh_call(TFD_SH_SYS_EXIT, (const void *)(uintptr_t)(code == 0
                                                                      ? TFD_SH_ADP_STOPPED_APPLICATION_EXIT
                                                                      : 0x20024u /* RunTimeErrorUnknown */));
    for (;;) __asm volatile("wfi");
}

int tfd_sh_cmdline(char *buf, size_t cap)
{
    if (cap == 0) return -1;
    uint32_t block[2] = {(uint32_t)(uintptr_t)buf, (uint32_t)cap};
    if (tfd_sh_call(TFD_SH_SYS_GET_CMDLINE, block) != 0) return -1;
    if (block[1] >= cap) return -1;
    buf[block[1]] = '\0';
    return (int)block[1];
}

int tfd_sh_cmdline_value(const char *key, char *out, size_t cap)
{
    char line[256];
    if (tfd_sh_cmdline(line, sizeof line) < 0) return -1;
    const size_t klen = strlen(key);
    for (const char *p = line; *p;) {
        while (*p == ' ') ++p;
        const char *end = p;
        while (*end && *end != ' ') ++end;
        if ((size_t)(end - p) > klen + 3 && p[0] == '-' && p[1] == '-' &&
            memcmp(p + 2, key, klen) == 0 && p[2 + klen] == '=') {
            const char *v = p + 3 + klen;
            const size_t vlen = (size_t)(end - v);
            if (vlen + 1 > cap) return -1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return (int)vlen;
        }
        p = end;
    }
    return -1;
}

int tfd_sh_open(const char *path, uint32_t mode)
{
    const uint32_t block[3] = {(uint32_t)(uintptr_t)path, mode, (uint32_t)strlen(path)};
    return tfd_sh_call(TFD_SH_SYS_OPEN, block);
}

int tfd_sh_close(int handle)
{
    const uint32_t block[1] = {(uint32_t)handle};
    return tfd_sh_call(TFD_SH_SYS_CLOSE, block) == 0 ? 0 : -1;
}

int tfd_sh_write(int handle, const void *data, size_t len)
{
    const uint32_t block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)data, (uint32_t)len};
    return tfd_sh_call(TFD_SH_SYS_WRITE, block) == 0 ? 0 : -1; /* returns bytes NOT written */
}

int tfd_sh_read(int handle, void *out, size_t len)
{
    const uint32_t block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)out, (uint32_t)len};
    return tfd_sh_call(TFD_SH_SYS_READ, block) == 0 ? 0 : -1; /* returns bytes NOT read */
}

int tfd_sh_seek(int handle, uint32_t pos)
{
    const uint32_t block[2] = {(uint32_t)handle, pos};
    return tfd_sh_call(TFD_SH_SYS_SEEK, block) == 0 ? 0 : -1;
}

int32_t tfd_sh_flen(int handle)
{
    const uint32_t block[1] = {(uint32_t)handle};
    return tfd_sh_call(TFD_SH_SYS_FLEN, block);
}
