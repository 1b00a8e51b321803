/* tinyfed — protocol-only image: the device protocol on a board, no model.
 *
 * For link tests and bench/wire_bench.py: HELLO/INFO/PING/GET_STATS and the
 * TEST transfer purposes (build with TFD_TEST_MESSAGES=1); EVAL and
 * INFER_TEST answer ERROR (no model linked).  Built with runtime=False and the
 * protocol sources as extra sources (tinyfed_host.loopback.proto_sources()).
 */
#include "tfd/port.h"
#include "tfd/proto.h"
#include "uart_link.h"

static tfd_proto_t g_proto;

static void app_info(void *ctx, tfd_msg_INFO_t *info)
{
    (void)ctx;
    tfd_wire_set_str(info->board, sizeof info->board, tfd_port_board_name());
    tfd_wire_set_str(info->fw_version, sizeof info->fw_version, "0.1.0-link");
    tfd_wire_set_str(info->model_name, sizeof info->model_name, "");
    info->sram_used = (uint32_t)sizeof g_proto;
}

static const tfd_app_t kApp = {.info = app_info, .millis = tfd_uart_link_millis};

int main(void)
{
    tfd_port_init();
    tfd_proto_init(&g_proto, &kApp, NULL, tfd_uart_link_write, NULL);
    tfd_uart_link_serve(&g_proto);
}
