/* tinyfed — COBS encoder (streaming, bounded).  Consistent Overhead Byte
 * Stuffing: the output has no 0x00, costs at most one byte per 254 plus one,
 * and the 0x00 that follows marks the frame end. */
#include "tfd/frame.h"

static void emit(tfd_cobs_enc_t *enc, size_t at, uint8_t byte)
{
    if (at < enc->cap) {
        enc->out[at] = byte;
    } else {
        enc->overflow = 1;
    }
}

void tfd_cobs_begin(tfd_cobs_enc_t *enc, uint8_t *out, size_t cap)
{
    enc->out = out;
    enc->cap = cap;
    enc->code_pos = 0;
    enc->pos = 1; /* out[0] is reserved for the first code byte */
    enc->code = 1;
    enc->overflow = 0;
}

static void close_block(tfd_cobs_enc_t *enc)
{
    emit(enc, enc->code_pos, enc->code);
    enc->code_pos = enc->pos++;
    enc->code = 1;
}

void tfd_cobs_put(tfd_cobs_enc_t *enc, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        if (data[i] == 0) {
            close_block(enc);
        } else {
            emit(enc, enc->pos++, data[i]);
            if (++enc->code == 0xFF) close_block(enc);
        }
    }
}

tfd_status_t tfd_cobs_end(tfd_cobs_enc_t *enc, size_t *out_len)
{
    emit(enc, enc->code_pos, enc->code);
    emit(enc, enc->pos++, 0x00);
    TFD_ENSURE(!enc->overflow, TFD_ERR_FRAME_SIZE);
    *out_len = enc->pos;
    return TFD_OK;
}
