/* tinyfed — "loopback device": the real device protocol code (firmware/src/proto)
 * compiled for the host and served over stdin/stdout, a TCP socket or a pty,
 * with a small deterministic application, so the host tool and the tests talk
 * to genuine C framing/codec/state-machine code without a board.
 *
 *   proto_loopback --stdio          link = stdin/stdout (stats on stderr at EOF)
 *   proto_loopback --tcp PORT       listen on 127.0.0.1:PORT (0: any), print
 *                                   "TCP <port>" on stdout, serve one connection
 *   proto_loopback --pty            print "PTY <path>", serve the pty until stdin
 *                                   closes (the parent's pipe)
 *
 * The application (synthetic, documented so the tests can recompute it):
 *   shard: LB_N samples of LB_CLASSES int8 "logits", x[i][j] = ((i*37 + j*11 + 5)
 *          & 0xFF) - 128, label y[i] = (i*7 + 3) % LB_CLASSES; the model is the
 *          identity, scale LB_SCALE, zero point LB_ZP; EVAL uses tfd_metrics_add_sample
 *          (the same code as the firmware's EVAL).
 *   infer: out[k] = clamp((sum_i in[i] * ((i + 3k) % 7 - 3)) >> 4, -128, 127),
 *          k < LB_CLASSES.
 */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "host_link.h"
#include "tfd/proto.h"
#include "tfd/shard.h"

#define LB_N 37u
#define LB_CLASSES 10u
#define LB_SCALE 0.0625f
#define LB_ZP (-4)

static int g_out_fd = 1;

static int8_t lb_x(uint32_t i, uint32_t j)
{
    return (int8_t)((int)((i * 37u + j * 11u + 5u) & 0xFFu) - 128);
}

static void lb_info(void *ctx, tfd_msg_INFO_t *info)
{
    (void)ctx;
    static const uint8_t hash[16] = {0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE,
                                     0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF};
    tfd_wire_set_str(info->board, sizeof info->board, "host-loopback");
    tfd_wire_set_str(info->fw_version, sizeof info->fw_version, "0.1.0-host");
    tfd_wire_set_str(info->model_name, sizeof info->model_name, "synthetic-identity");
    memcpy(info->model_hash, hash, sizeof hash);
    info->flash_used = 0;
    info->sram_used = (uint32_t)sizeof(tfd_proto_t);
    info->arena_bytes = 0;
    info->shard_size = LB_N;
    info->num_classes = LB_CLASSES;
    info->input_bytes = 0; /* any length */
    info->output_bytes = LB_CLASSES;
    info->caps |= TFD_CAP_MODEL;
}

static tfd_status_t lb_eval(void *ctx, uint32_t max_samples, tfd_msg_EVAL_RESULT_t *out)
{
    (void)ctx;
    tfd_metrics_t acc = {0, 0, 0.0f};
    const uint32_t n = (max_samples == 0 || max_samples > LB_N) ? LB_N : max_samples;
    for (uint32_t i = 0; i < n; ++i) {
        int8_t logits[LB_CLASSES];
        for (uint32_t j = 0; j < LB_CLASSES; ++j) logits[j] = lb_x(i, j);
        TFD_TRY(tfd_metrics_add_sample(&acc, logits, LB_CLASSES, LB_SCALE, LB_ZP, (i * 7u + 3u) % LB_CLASSES));
    }
    out->samples = acc.samples;
    out->correct = acc.correct;
    out->loss_sum = acc.loss_sum;
    return TFD_OK;
}

static tfd_status_t lb_infer(void *ctx, const int8_t *in, size_t in_len, int8_t *out, size_t cap,
                             size_t *out_len)
{
    (void)ctx;
    TFD_ENSURE(in_len > 0, TFD_ERR_SHAPE);
    TFD_ENSURE(cap >= LB_CLASSES, TFD_ERR_SHAPE);
    for (uint32_t k = 0; k < LB_CLASSES; ++k) {
        int32_t acc = 0;
        for (size_t i = 0; i < in_len; ++i) acc += (int32_t)in[i] * ((int32_t)((i + 3u * k) % 7u) - 3);
        acc >>= 4; /* arithmetic shift (gcc) == Python's floor shift */
        out[k] = (int8_t)(acc > 127 ? 127 : acc < -128 ? -128 : acc);
    }
    *out_len = LB_CLASSES;
    return TFD_OK;
}

static uint32_t lb_millis(void *ctx)
{
    (void)ctx;
    return tfd_host_millis();
}

static void lb_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    tfd_host_write_all(g_out_fd, data, len);
}

static const tfd_app_t kApp = {
    .info = lb_info,
    .eval = lb_eval,
    .infer = lb_infer,
    .millis = lb_millis,
};

static tfd_proto_t g_proto;

static void print_stats(void)
{
    tfd_msg_STATS_t s;
    tfd_proto_get_stats(&g_proto, &s);
    const tfd_proto_stats_t *p = &g_proto.stats;
    fprintf(stderr,
            "STATS bytes_in=%u frames_ok=%u empty=%u crc_errors=%u cobs_errors=%u oversize=%u runts=%u "
            "bad_header=%u requests=%u replays=%u errors_sent=%u nacks_sent=%u unknown=%u "
            "not_request=%u bad_length=%u bad_state=%u bytes_out=%u stage=%s\n",
            s.bytes_in, s.frames_ok, g_proto.dec.stats.empty, s.crc_errors, s.cobs_errors, s.oversize,
            s.runts, s.bad_header, p->requests, s.replays, s.errors_sent, s.nacks_sent, p->unknown,
            p->not_request, p->bad_length, p->bad_state, s.bytes_out, tfd_stage_name(g_proto.stage));
}

/* Serve `in_fd` until EOF (or until `stop_fd`, if >= 0, becomes readable/closed). */
static int serve(int in_fd, int stop_fd)
{
    uint8_t buf[512];
    for (;;) {
        struct pollfd fds[2] = {{.fd = in_fd, .events = POLLIN, .revents = 0},
                                {.fd = stop_fd, .events = POLLIN, .revents = 0}};
        const int r = poll(fds, stop_fd >= 0 ? 2 : 1, -1);
        if (r < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (stop_fd >= 0 && fds[1].revents) return 0;
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            const ssize_t n = read(in_fd, buf, sizeof buf);
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (n < 0 && errno == EIO && stop_fd >= 0) { /* pty: no reader yet */
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
                continue;
            }
            if (n <= 0) return 0;
            tfd_proto_feed(&g_proto, buf, (size_t)n);
        }
    }
}

static int serve_tcp(int port)
{
    const int s = tfd_host_accept_tcp(port);
    if (s < 0) return 2;
    g_out_fd = s;
    const int rc = serve(s, -1);
    close(s);
    return rc;
}

static int serve_pty(void)
{
    const int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) return 2;
    struct termios t;
    if (tcgetattr(m, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(m, TCSANOW, &t);
    }
    const char *name = ptsname(m);
    if (!name) return 2;
    printf("PTY %s\n", name);
    fflush(stdout);
    g_out_fd = m;
    return serve(m, 0); /* until the parent closes our stdin */
}

int main(int argc, char **argv)
{
    tfd_proto_init(&g_proto, &kApp, NULL, lb_write, NULL);
    int rc = 2;
    if (argc >= 2 && strcmp(argv[1], "--stdio") == 0) {
        g_out_fd = 1;
        rc = serve(0, -1);
    } else if (argc >= 3 && strcmp(argv[1], "--tcp") == 0) {
        rc = serve_tcp(atoi(argv[2]));
    } else if (argc >= 2 && strcmp(argv[1], "--pty") == 0) {
        rc = serve_pty();
    } else {
        fprintf(stderr, "usage: %s --stdio | --tcp PORT | --pty\n", argv[0]);
        return 2;
    }
    print_stats();
    return rc;
}
