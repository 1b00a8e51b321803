/* tinyfed — frame encoder and the byte-at-a-time frame decoder. */
#include <string.h>

#include "tfd/frame.h"

/* Serialize the header in wire.def order. */
static size_t put_header(const tfd_frame_hdr_t *hdr, uint8_t *out)
{
    size_t n = 0;
#define TFD_HEADER(type, field) n += tfd_put_##type(out + n, hdr->field);
#define tfd_put_U8(p, v) (*(p) = (uint8_t)(v), 1u)
#define tfd_put_U16(p, v) (tfd_put_u16((p), (uint16_t)(v)), 2u)
#include "tfd/wire.def"
#undef tfd_put_U8
#undef tfd_put_U16
    return n;
}

static size_t get_header(const uint8_t *in, tfd_frame_hdr_t *hdr)
{
    size_t n = 0;
#define TFD_HEADER(type, field) hdr->field = tfd_get_##type(in + n), n += TFD_WSIZE_##type;
#define tfd_get_U8(p) (*(p))
#define tfd_get_U16(p) tfd_get_u16(p)
#include "tfd/wire.def"
#undef tfd_get_U8
#undef tfd_get_U16
    return n;
}

tfd_status_t tfd_frame_encode(tfd_frame_hdr_t *hdr, const uint8_t *payload, size_t len,
                              uint8_t *out, size_t cap, size_t *out_len)
{
    TFD_ENSURE(hdr != NULL && out != NULL && out_len != NULL, TFD_ERR_ARG);
    TFD_ENSURE(len <= TFD_WIRE_MAX_PAYLOAD, TFD_ERR_FRAME_SIZE);
    TFD_ENSURE(len == 0 || payload != NULL, TFD_ERR_ARG);
    uint8_t head[TFD_WIRE_HEADER_BYTES];
    uint8_t tail[TFD_WIRE_CRC_BYTES];
    hdr->length = (uint16_t)len;
    const size_t hn = put_header(hdr, head);
    uint32_t crc = tfd_crc32(0, head, hn);
    if (len) crc = tfd_crc32(crc, payload, len);
    tfd_put_u32(tail, crc);
    tfd_cobs_enc_t enc;
    tfd_cobs_begin(&enc, out, cap);
    tfd_cobs_put(&enc, head, hn);
    if (len) tfd_cobs_put(&enc, payload, len);
    tfd_cobs_put(&enc, tail, sizeof tail);
    size_t n = 0;
    TFD_TRY(tfd_cobs_end(&enc, &n));
    /* tfd_cobs_end wrote the first delimiter; the others follow it. */
    TFD_ENSURE(cap - n >= TFD_WIRE_END_ZEROS - 1u, TFD_ERR_FRAME_SIZE);
    memset(out + n, 0, TFD_WIRE_END_ZEROS - 1u);
    *out_len = n + TFD_WIRE_END_ZEROS - 1u;
    return TFD_OK;
}

void tfd_frame_decoder_init(tfd_frame_decoder_t *dec)
{
    memset(dec, 0, sizeof *dec);
}

static void restart(tfd_frame_decoder_t *dec)
{
    dec->len = 0;
    dec->left = 0;
    dec->code = 0;
    dec->oversize = 0;
}

static void append(tfd_frame_decoder_t *dec, uint8_t byte)
{
    if (dec->len < sizeof dec->buf) {
        dec->buf[dec->len++] = byte;
    } else {
        dec->oversize = 1; /* keep counting nothing; wait for the delimiter */
    }
}

/* A delimiter arrived: validate what was collected. */
static tfd_frame_event_t finish(tfd_frame_decoder_t *dec, tfd_frame_t *out, tfd_status_t *why)
{
    tfd_frame_stats_t *st = &dec->stats;
    if (dec->code == 0) { /* nothing since the last delimiter */
        st->empty++;
        return TFD_FRAME_NONE;
    }
    if (dec->oversize) {
        st->oversize++;
        *why = TFD_ERR_FRAME_SIZE;
        return TFD_FRAME_DROPPED;
    }
    if (dec->left != 0) {
        st->cobs_errors++;
        *why = TFD_ERR_FRAME_DECODE;
        return TFD_FRAME_DROPPED;
    }
    if (dec->len < TFD_WIRE_HEADER_BYTES + TFD_WIRE_CRC_BYTES) {
        st->runts++;
        *why = TFD_ERR_FRAME_DECODE;
        return TFD_FRAME_DROPPED;
    }
    const size_t body = dec->len - TFD_WIRE_CRC_BYTES;
    const uint32_t crc = tfd_get_u32(dec->buf + body);
    if (tfd_crc32(0, dec->buf, body) != crc) {
        st->crc_errors++;
        *why = TFD_ERR_FRAME_CRC;
        return TFD_FRAME_DROPPED;
    }
    tfd_frame_hdr_t hdr;
    const size_t hn = get_header(dec->buf, &hdr);
    if (hdr.version != TFD_WIRE_FRAME_VERSION || (hdr.flags & ~TFD_FLAG_MASK) != 0 ||
        (size_t)hdr.length != body - hn) {
        st->bad_header++;
        *why = TFD_ERR_FRAME_DECODE;
        return TFD_FRAME_DROPPED;
    }
    st->frames_ok++;
    out->hdr = hdr;
    out->payload = dec->buf + hn;
    out->len = hdr.length;
    out->crc = crc;
    return TFD_FRAME_READY;
}

tfd_frame_event_t tfd_frame_feed(tfd_frame_decoder_t *dec, uint8_t byte, tfd_frame_t *out,
                                 tfd_status_t *why)
{
    dec->stats.bytes++;
    if (byte == 0x00) {
        const tfd_frame_event_t ev = finish(dec, out, why);
        restart(dec);
        return ev;
    }
    if (dec->left == 0) {
        /* A code byte starts a block; the block before it ends in an implied
         * zero unless it was a full (0xFF) block.  The implied zero after the
         * last block is never appended: it is the frame end. */
        if (dec->code != 0 && dec->code != 0xFF) append(dec, 0x00);
        dec->code = byte;
        dec->left = (uint8_t)(byte - 1u);
    } else {
        append(dec, byte);
        dec->left--;
    }
    return TFD_FRAME_NONE;
}
