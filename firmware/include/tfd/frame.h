/* tinyfed — framing: CRC-32, COBS and the frame codec.
 *
 * On the wire a frame is COBS(header | payload | CRC-32 LE) followed by
 * TFD_WIRE_END_ZEROS (2) 0x00 bytes: the first ends the frame, the second is
 * an empty frame to every decoder and ends it instead when the first is lost
 * or flipped on a noisy line (the frame is then caught as corrupt at once,
 * not waited for until the next frame or a timeout).
 * The header layout comes from tfd/wire.def (TFD_HEADER lines); the CRC is
 * IEEE 802.3 (reflected 0xEDB88320, init and final xor 0xFFFFFFFF: the same
 * numbers as zlib.crc32) over header and payload.  0x00 never occurs inside
 * an encoded frame, so a receiver resynchronises at the next 0x00 whatever
 * garbage it saw.
 *
 * The decoder is a byte-at-a-time state machine over one static buffer of
 * TFD_MAX_FRAME bytes; it never allocates, never recurses and never writes
 * past that buffer.  Every dropped frame is counted by reason.
 */
#ifndef TFD_FRAME_H
#define TFD_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/status.h"
#include "tfd/wire.h"

/* ---- CRC-32 (IEEE) ----------------------------------------------------------- */
/* Running CRC like zlib: crc = tfd_crc32(0, a, n); crc = tfd_crc32(crc, b, m). */
uint32_t tfd_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* ---- COBS encoder (streaming) --------------------------------------------------- */
typedef struct {
    uint8_t *out;
    size_t cap;
    size_t pos;      /* next free byte in out */
    size_t code_pos; /* where the current block's code byte goes */
    uint8_t code;    /* 1 + data bytes in the current block */
    uint8_t overflow;
} tfd_cobs_enc_t;

void tfd_cobs_begin(tfd_cobs_enc_t *enc, uint8_t *out, size_t cap);
void tfd_cobs_put(tfd_cobs_enc_t *enc, const uint8_t *data, size_t len);
/* Close the last block and append the 0x00 delimiter; *out_len = bytes written. */
TFD_CHECK_RESULT tfd_status_t tfd_cobs_end(tfd_cobs_enc_t *enc, size_t *out_len);

/* ---- frame encoder ----------------------------------------------------------------- */
/* Encode one frame (COBS + TFD_WIRE_END_ZEROS delimiters) into out[cap]; hdr->length is set from len.
 * TFD_ERR_FRAME_SIZE if the payload exceeds TFD_WIRE_MAX_PAYLOAD or out is too small. */
TFD_CHECK_RESULT tfd_status_t tfd_frame_encode(tfd_frame_hdr_t *hdr, const uint8_t *payload,
                                               size_t len, uint8_t *out, size_t cap,
                                               size_t *out_len);

/* ---- frame decoder -------------------------------------------------------------------- */
typedef struct {
    uint32_t bytes;       /* bytes fed */
    uint32_t frames_ok;   /* frames delivered */
    uint32_t empty;       /* 0x00 with nothing before it: not an error */
    uint32_t crc_errors;  /* CRC-32 mismatch */
    uint32_t cobs_errors; /* a COBS block cut short by the delimiter */
    uint32_t oversize;    /* more than TFD_MAX_FRAME decoded bytes */
    uint32_t runts;       /* shorter than header + CRC */
    uint32_t bad_header;  /* wrong frame version, reserved flag bits, length mismatch */
} tfd_frame_stats_t;

typedef struct {
    tfd_frame_hdr_t hdr;
    const uint8_t *payload; /* points into the decoder's buffer: valid until the next feed */
    uint16_t len;
    uint32_t crc;           /* the frame's CRC field (identifies a retransmission) */
} tfd_frame_t;

typedef enum {
    TFD_FRAME_NONE = 0,    /* byte consumed, no frame boundary */
    TFD_FRAME_READY = 1,   /* *out holds a valid frame */
    TFD_FRAME_DROPPED = 2  /* a frame ended and was dropped; *why says why */
} tfd_frame_event_t;

typedef struct {
    uint8_t buf[TFD_MAX_FRAME];
    uint16_t len;   /* decoded bytes in buf */
    uint8_t left;   /* data bytes left in the current COBS block (0: next is a code) */
    uint8_t code;   /* current block's code (0: no block yet in this frame) */
    uint8_t oversize;
    tfd_frame_stats_t stats;
} tfd_frame_decoder_t;

void tfd_frame_decoder_init(tfd_frame_decoder_t *dec);

/* Feed one byte.  On TFD_FRAME_READY, *out describes the frame; on
 * TFD_FRAME_DROPPED, *why is TFD_ERR_FRAME_CRC / _SIZE / _DECODE. */
tfd_frame_event_t tfd_frame_feed(tfd_frame_decoder_t *dec, uint8_t byte, tfd_frame_t *out,
                                 tfd_status_t *why);

#endif /* TFD_FRAME_H */
