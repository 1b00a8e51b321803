/* Board self-test: overflowing the reserved stack must fault (exit 128+n),
 * never run on into .data/.bss.  The stack sits at the bottom of RAM. */
#include <stdint.h>

#include "tfd/port.h"

static volatile uint32_t sink;

static uint32_t recurse(uint32_t depth)
{
    volatile uint8_t frame[256];
    frame[depth & 0xFFu] = (uint8_t)depth;
    if (depth > 1000000u) return frame[0];
    return recurse(depth + 1u) + frame[depth & 0xFFu];
}

int main(void)
{
    tfd_port_init();
    tfd_port_log("recursing\n");
    sink = recurse(0);
    tfd_port_log("stack overflow NOT detected\n");
    return 0;
}
