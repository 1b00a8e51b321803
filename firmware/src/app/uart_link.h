/* tinyfed apps — the device protocol served over the board's UART: the link
 * and clock callbacks a board app hands tfd_proto_init() / tfd_app_t, and the
 * main loop.  Shared by the apps that speak the protocol (main.c,
 * proto_link.c); included, not compiled alone (an image has one app). */
#ifndef TFD_APP_UART_LINK_H
#define TFD_APP_UART_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/port.h"
#include "tfd/proto.h"

/* tfd_app_t.millis: the port's millisecond clock. */
static inline uint32_t tfd_uart_link_millis(void *ctx)
{
    (void)ctx;
    return tfd_port_millis();
}

/* tfd_proto_init's write callback: replies go out on the UART. */
static inline void tfd_uart_link_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    tfd_port_uart_write(data, len);
}

/* Feed the protocol whatever the UART receives, forever; sleep in
 * tfd_port_idle() while there is nothing.  A lone delimiter first: whatever
 * the host's decoder holds is flushed. */
static inline void tfd_uart_link_serve(tfd_proto_t *p) __attribute__((noreturn));
static inline void tfd_uart_link_serve(tfd_proto_t *p)
{
    const uint8_t delimiter = 0x00;
    tfd_port_uart_write(&delimiter, 1);
    for (;;) {
        uint8_t buf[64];
        const size_t n = tfd_port_uart_read(buf, sizeof buf);
        if (n > 0) {
            tfd_proto_feed(p, buf, n);
        } else {
            tfd_port_idle();
        }
    }
}

#endif /* TFD_APP_UART_LINK_H */
