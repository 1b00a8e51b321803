/* tinyfed boards — the few newlib (nano.specs) system calls the firmware can
 * reach.  No heap: the device never mallocs, so _sbrk always fails (ENOMEM).
 * stdout/stderr go to tfd_port_log; everything else fails cleanly. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "tfd/port.h"

#undef errno
extern int errno;

void *_sbrk(ptrdiff_t increment);
int _write(int fd, const char *buf, int len);
int _read(int fd, char *buf, int len);
int _close(int fd);
int _fstat(int fd, struct stat *st);
int _isatty(int fd);
int _lseek(int fd, int offset, int whence);
int _kill(int pid, int sig);
int _getpid(void);
void _exit(int code) __attribute__((noreturn));

void *_sbrk(ptrdiff_t increment)
{
    (void)increment;
    errno = ENOMEM;
    return (void *)-1;
}

int _write(int fd, const char *buf, int len)
{
    if (fd != 1 && fd != 2) {
        errno = EBADF;
        return -1;
    }
    char chunk[65];
    int done = 0;
    while (done < len) {
        int n = len - done < 64 ? len - done : 64;
        for (int i = 0; i < n; ++i) chunk[i] = buf[done + i];
        chunk[n] = '\0';
        tfd_port_log(chunk);
        done += n;
    }
    return len;
}

int _read(int fd, char *buf, int len)
{
    (void)fd;
    (void)buf;
    (void)len;
    errno = EBADF;
    return -1;
}

int _close(int fd)
{
    (void)fd;
    errno = EBADF;
    return -1;
}

int _fstat(int fd, struct stat *st)
{
    (void)fd;
    st->st_mode = S_IFCHR;
    return 0;
}

int _isatty(int fd)
{
    return fd >= 0 && fd <= 2;
}

int _lseek(int fd, int offset, int whence)
{
    (void)fd;
    (void)offset;
    (void)whence;
    return 0;
}

int _kill(int pid, int sig)
{
    (void)pid;
    (void)sig;
    errno = EINVAL;
    return -1;
}

int _getpid(void)
{
    return 1;
}

void _exit(int code)
{
    tfd_port_exit(code);
}
