/* tinyfed boards — lock-free single-producer / single-consumer byte ring.
 *
 * Producer: the UART RX interrupt (tfd_ring_put).  Consumer: thread mode
 * (tfd_ring_get).  Each index is written by one side only; acquire/release
 * ordering makes the data write visible before the index that publishes it. */
#ifndef TFD_RINGBUF_H
#define TFD_RINGBUF_H

#include <stddef.h>
#include <stdint.h>

#ifndef TFD_UART_RX_RING_BYTES
#define TFD_UART_RX_RING_BYTES 2048u
#endif
_Static_assert((TFD_UART_RX_RING_BYTES & (TFD_UART_RX_RING_BYTES - 1u)) == 0u,
               "TFD_UART_RX_RING_BYTES must be a power of two");

typedef struct {
    uint32_t head;     /* written by the producer only */
    uint32_t tail;     /* written by the consumer only */
    uint32_t dropped;  /* bytes lost because the ring was full (producer) */
    uint8_t data[TFD_UART_RX_RING_BYTES];
} tfd_ring_t;

/* Producer side; returns 0 (and counts a drop) if the ring is full. */
static inline int tfd_ring_put(tfd_ring_t *r, uint8_t byte)
{
    const uint32_t head = r->head;
    const uint32_t tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    if (head - tail >= TFD_UART_RX_RING_BYTES) {
        r->dropped++;
        return 0;
    }
    r->data[head & (TFD_UART_RX_RING_BYTES - 1u)] = byte;
    __atomic_store_n(&r->head, head + 1u, __ATOMIC_RELEASE);
    return 1;
}

/* Consumer side; copies up to cap bytes, returns the count. */
static inline size_t tfd_ring_get(tfd_ring_t *r, uint8_t *out, size_t cap)
{
    const uint32_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
    uint32_t tail = r->tail;
    size_t n = 0;
    while (n < cap && tail != head) {
        out[n++] = r->data[tail & (TFD_UART_RX_RING_BYTES - 1u)];
        tail++;
    }
    __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
    return n;
}

static inline int tfd_ring_empty(tfd_ring_t *r)
{
    return __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) == r->tail;
}

#endif /* TFD_RINGBUF_H */
