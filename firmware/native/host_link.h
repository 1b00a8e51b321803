/* tinyfed — what the host-compiled devices share (fl_device_host.c,
 * proto_loopback.c): a monotonic millisecond clock, writing a whole buffer to
 * the link, and one TCP connection served on 127.0.0.1 like QEMU's
 * `-serial tcp:...,server`. */
#ifndef TFD_HOST_LINK_H
#define TFD_HOST_LINK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC (wraps like a device's tick counter). */
uint32_t tfd_host_millis(void);

/* Write all of data to fd, retrying after EINTR / EAGAIN; gives up quietly
 * when the link is gone (the read side then sees EOF). */
void tfd_host_write_all(int fd, const uint8_t *data, size_t len);

/* Listen on 127.0.0.1:port (0: any free port), print "TCP <port>" on stdout,
 * accept one connection (TCP_NODELAY) and stop listening.  Returns the
 * connected socket, or -1. */
int tfd_host_accept_tcp(int port);

#endif /* TFD_HOST_LINK_H */
