/* tinyfed tests — the C side of the cross-language wire checks.
 *
 *   wire_check table      print the C view of the wire table, one line each:
 *                           CONST name value | HEADER bytes max_frame max_wire table_crc
 *                           MSG name id dir cls gate fixed tailmax nfields
 *                           FIELD msg type is_tail count wire_off
 *                           PURPOSE name id dir cls gate
 *                           STRUCT name is_body msg dir purpose fixed nfields nrepeats
 *                           SFIELD struct type count wire_off
 *                           REPEAT struct record count_off count_size max
 *                           SUMMED count
 *   wire_check vectors    stdin: lines "<hex frame>"; for each, decode the frame
 *                         byte by byte, decode the message through the table,
 *                         re-encode message and frame, print "OK <hex>" or
 *                         "ERR <status name>"
 *   wire_check stream     feed stdin to a bare frame decoder; print one line per
 *                         event ("FRAME id seq flags len" / "DROP code") and a
 *                         final "STATS ..." line
 *   wire_check crc        print the CRC-32 of stdin in hex
 *   wire_check bodies     stdin: lines "<body name> <hex>"; decode each through
 *                         the table and encode it back: print "OK round
 *                         count... <hex>" or "ERR <status name>"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tfd/frame.h"
#include "tfd/wire.h"

static const char *status_name(tfd_status_t s)
{
    switch (s) {
#define N_(name, code, text) \
    case name: return #name;
        TFD_STATUS_LIST(N_)
#undef N_
    }
    return "?";
}

static int cmd_table(void)
{
#define TFD_WIRE_CONST(name, value) printf("CONST %s %ld\n", #name, (long)TFD_WIRE_##name);
#include "tfd/wire.def"
    printf("HEADER %d %d %d %lu\n", TFD_WIRE_HEADER_BYTES, TFD_MAX_FRAME, TFD_MAX_WIRE_FRAME,
           (unsigned long)tfd_wire_table_crc());
    for (size_t i = 0; i < tfd_wire_msg_count; ++i) {
        const tfd_wire_msg_t *m = &tfd_wire_msgs[i];
        printf("MSG %s %u %u %u %u %u %u %u\n", m->name, m->id, m->dir, m->cls, m->gate, m->fixed_bytes,
               m->tail_max, m->n_fields);
        for (const tfd_wire_field_t *f = m->fields; f->type != TFD_WT_END; ++f) {
            printf("FIELD %s %u %u %u %u\n", m->name, f->type, f->is_tail, f->count, f->wire_off);
        }
    }
    for (size_t i = 0; i < tfd_wire_purpose_count; ++i) {
        const tfd_wire_purpose_t *p = &tfd_wire_purposes[i];
        printf("PURPOSE %s %u %u %u %u\n", p->name, p->id, p->dir, p->cls, p->gate);
    }
    for (size_t i = 0; i < tfd_wire_struct_count; ++i) {
        const tfd_wire_struct_t *s = tfd_wire_structs[i];
        printf("STRUCT %s %u %u %u %u %u %u %u\n", s->name, s->is_body, s->msg, s->dir, s->purpose, s->fixed_bytes,
               s->n_fields, s->n_repeats);
        for (const tfd_wire_field_t *f = s->fields; f->type != TFD_WT_END; ++f) {
            printf("SFIELD %s %u %u %u\n", s->name, f->type, f->count, f->wire_off);
        }
        for (unsigned r = 0; r < s->n_repeats; ++r) {
            const tfd_wire_repeat_t *g = &s->repeats[r];
            printf("REPEAT %s %s %u %u %lu\n", s->name, g->record->name, g->count_off, g->count_size,
                   (unsigned long)g->max);
        }
    }
    printf("SUMMED %u\n", (unsigned)TFD_SA_SUMMED_COUNT);
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

typedef union {
#define TFD_MSG(name, id, dir, cls, gate) tfd_msg_##name##_t m_##name;
#include "tfd/wire.def"
} any_msg_t;

static tfd_status_t roundtrip(const uint8_t *wire, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    static tfd_frame_decoder_t dec;
    tfd_frame_decoder_init(&dec);
    tfd_frame_t f;
    int got = 0;
    for (size_t i = 0; i < n; ++i) {
        tfd_status_t why = TFD_OK;
        const tfd_frame_event_t ev = tfd_frame_feed(&dec, wire[i], &f, &why);
        if (ev == TFD_FRAME_DROPPED) return why;
        if (ev == TFD_FRAME_READY) {
            /* the frame ends at its first delimiter; the other END_ZEROS are empty frames */
            TFD_ENSURE(!got && i + TFD_WIRE_END_ZEROS == n, TFD_ERR_FRAME_DECODE);
            got = 1;
        }
    }
    TFD_ENSURE(got, TFD_ERR_FRAME_DECODE);
    const tfd_wire_msg_t *d = tfd_wire_find(f.hdr.msg_id);
    TFD_ENSURE(d != NULL, TFD_ERR_MSG_UNKNOWN);
    any_msg_t m;
    TFD_TRY(tfd_wire_decode(f.hdr.msg_id, f.payload, f.len, &m, d->native_size));
    uint8_t payload[TFD_WIRE_MAX_PAYLOAD];
    size_t plen = 0;
    TFD_TRY(tfd_wire_encode(f.hdr.msg_id, &m, d->native_size, payload, sizeof payload, &plen));
    tfd_frame_hdr_t hdr = f.hdr;
    return tfd_frame_encode(&hdr, payload, plen, out, cap, out_len);
}

static int cmd_vectors(void)
{
    static char line[8 * TFD_MAX_WIRE_FRAME];
    static uint8_t wire[4 * TFD_MAX_WIRE_FRAME];
    static uint8_t out[TFD_MAX_WIRE_FRAME];
    while (fgets(line, sizeof line, stdin)) {
        size_t n = 0;
        for (size_t i = 0; line[i] && line[i + 1] && hexval(line[i]) >= 0 && n < sizeof wire; i += 2) {
            wire[n++] = (uint8_t)(hexval(line[i]) * 16 + hexval(line[i + 1]));
        }
        size_t out_len = 0;
        const tfd_status_t st = roundtrip(wire, n, out, sizeof out, &out_len);
        if (st != TFD_OK) {
            printf("ERR %s\n", status_name(st));
            continue;
        }
        printf("OK ");
        for (size_t i = 0; i < out_len; ++i) printf("%02x", out[i]);
        printf("\n");
    }
    return 0;
}

static int cmd_stream(void)
{
    static tfd_frame_decoder_t dec;
    tfd_frame_decoder_init(&dec);
    int c;
    while ((c = getchar()) != EOF) {
        tfd_frame_t f;
        tfd_status_t why = TFD_OK;
        switch (tfd_frame_feed(&dec, (uint8_t)c, &f, &why)) {
        case TFD_FRAME_READY:
            printf("FRAME %u %u %u %u\n", f.hdr.msg_id, f.hdr.seq, f.hdr.flags, f.len);
            break;
        case TFD_FRAME_DROPPED: printf("DROP %s\n", status_name(why)); break;
        case TFD_FRAME_NONE: break;
        }
    }
    const tfd_frame_stats_t *s = &dec.stats;
    printf("STATS bytes=%u frames_ok=%u empty=%u crc_errors=%u cobs_errors=%u oversize=%u runts=%u bad_header=%u\n",
           s->bytes, s->frames_ok, s->empty, s->crc_errors, s->cobs_errors, s->oversize, s->runts,
           s->bad_header);
    return 0;
}

static int cmd_crc(void)
{
    uint8_t buf[4096];
    uint32_t crc = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) crc = tfd_crc32(crc, buf, n);
    printf("%08lx\n", (unsigned long)crc);
    return 0;
}

static int cmd_bodies(void)
{
    static char line[70000];
    static uint8_t in[32768], out[32768];
    static union {
        tfd_body_SA_ADVERTISE_REQ_t a;
        tfd_body_SA_ADVERTISE_REPLY_t ar;
        tfd_body_SA_SHARE_KEYS_REQ_t s;
        tfd_body_SA_SHARE_KEYS_REPLY_t sr;
        tfd_body_SA_MASKED_INPUT_REQ_t m;
        tfd_body_SA_MASKED_INPUT_REPLY_t mr;
        tfd_body_SA_SURVIVORS_REQ_t sv;
        tfd_body_SA_SURVIVORS_REPLY_t svr;
        tfd_body_SA_UNMASK_REQ_t u;
        tfd_body_SA_UNMASK_REPLY_t ur;
    } nat;
    while (fgets(line, sizeof line, stdin)) {
        char *sp = strchr(line, ' ');
        if (!sp) continue;
        *sp = '\0';
        const tfd_wire_struct_t *d = NULL;
        for (size_t i = 0; i < tfd_wire_struct_count; ++i) {
            if (tfd_wire_structs[i]->is_body && !strcmp(tfd_wire_structs[i]->name, line)) d = tfd_wire_structs[i];
        }
        if (!d || d->native_size > sizeof nat) {
            printf("ERR unknown\n");
            continue;
        }
        size_t n = 0;
        for (const char *h = sp + 1; h[0] && h[1] && hexval(h[0]) >= 0 && n < sizeof in; h += 2) {
            in[n++] = (uint8_t)(hexval(h[0]) * 16 + hexval(h[1]));
        }
        tfd_status_t st = tfd_wire_body_decode(d, in, n, &nat, d->native_size);
        size_t olen = 0;
        if (st == TFD_OK) st = tfd_wire_body_encode(d, &nat, d->native_size, out, sizeof out, &olen);
        if (st != TFD_OK) {
            printf("ERR %s\n", status_name(st));
            continue;
        }
        uint32_t round;
        memcpy(&round, &nat, sizeof round);
        printf("OK %lu", (unsigned long)round);
        for (unsigned g = 0; g < d->n_repeats; ++g) {
            uint32_t cnt;
            memcpy(&cnt, (const uint8_t *)&nat + d->repeats[g].native_count_off, sizeof cnt);
            printf(" %lu", (unsigned long)cnt);
        }
        printf(" ");
        for (size_t i = 0; i < olen; ++i) printf("%02x", out[i]);
        printf("\n");
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "table")) return cmd_table();
    if (!strcmp(argv[1], "vectors")) return cmd_vectors();
    if (!strcmp(argv[1], "stream")) return cmd_stream();
    if (!strcmp(argv[1], "crc")) return cmd_crc();
    if (!strcmp(argv[1], "bodies")) return cmd_bodies();
    return 2;
}
