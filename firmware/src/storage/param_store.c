/* tinyfed — A/B parameter store with CRC-32 (see tfd/param_store.h for the
 * record layout and the reset-safety argument). */
#include "tfd/param_store.h"

#include <string.h>

#include "tfd/frame.h" /* tfd_crc32 */
#include "tfd/port.h"

#define OFF_MAGIC 0u
#define OFF_VERSION 4u
#define OFF_HEADER_BYTES 6u
#define OFF_GENERATION 8u
#define OFF_ROUND 12u
#define OFF_PAYLOAD_BYTES 16u
#define OFF_PAYLOAD_CRC 20u
#define OFF_HASH 24u
#define OFF_HEADER_CRC 40u
#define HEADER_CRC_SPAN 40u /* bytes covered by header_crc */
#define READ_PIECE 64u

_Static_assert(OFF_HASH + TFD_PARAM_HASH_BYTES <= OFF_HEADER_CRC, "hash overlaps the header CRC");
_Static_assert(OFF_HEADER_CRC == HEADER_CRC_SPAN, "header CRC must follow the covered bytes");
_Static_assert(OFF_HEADER_CRC + 4u <= TFD_PARAM_RECORD_HEADER, "header does not fit");

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4u; ++i) p[i] = (uint8_t)(v >> (8u * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Serial-number order: a is newer than b (generations may wrap). */
static int newer(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) > 0;
}

/* A structurally valid record: header checks out and the payload CRC matches. */
typedef struct {
    uint8_t valid;
    uint32_t generation;
    uint32_t round;
    uint32_t payload_bytes;
    uint8_t hash[TFD_PARAM_HASH_BYTES];
} slot_view_t;

static uint32_t slot_base(const tfd_param_store_t *s, unsigned slot)
{
    return s->base + (uint32_t)slot * s->slot_bytes;
}

TFD_CHECK_RESULT static tfd_status_t storage_crc(uint32_t offset, uint32_t len, uint32_t *crc)
{
    uint8_t piece[READ_PIECE];
    uint32_t c = 0;
    for (uint32_t done = 0; done < len;) {
        const uint32_t n = len - done < READ_PIECE ? len - done : READ_PIECE;
        TFD_TRY(tfd_port_storage_read(offset + done, piece, n));
        c = tfd_crc32(c, piece, n);
        done += n;
    }
    *crc = c;
    return TFD_OK;
}

/* Read and check one slot.  A read failure is a storage failure (propagated);
 * anything else that does not check out is just "not valid". */
TFD_CHECK_RESULT static tfd_status_t view_slot(const tfd_param_store_t *s, unsigned slot,
                                               slot_view_t *v)
{
    uint8_t h[TFD_PARAM_RECORD_HEADER];
    memset(v, 0, sizeof *v);
    const uint32_t at = slot_base(s, slot);
    TFD_TRY(tfd_port_storage_read(at, h, sizeof h));
    if (get32(h + OFF_MAGIC) != TFD_PARAM_MAGIC) return TFD_OK;
    if (get16(h + OFF_VERSION) != TFD_PARAM_RECORD_VERSION) return TFD_OK;
    if (get16(h + OFF_HEADER_BYTES) != TFD_PARAM_RECORD_HEADER) return TFD_OK;
    if (tfd_crc32(0, h, HEADER_CRC_SPAN) != get32(h + OFF_HEADER_CRC)) return TFD_OK;
    const uint32_t payload = get32(h + OFF_PAYLOAD_BYTES);
    if (payload > s->payload_max) return TFD_OK;
    uint32_t crc = 0;
    TFD_TRY(storage_crc(at + TFD_PARAM_RECORD_HEADER, payload, &crc));
    if (crc != get32(h + OFF_PAYLOAD_CRC)) return TFD_OK;
    v->valid = 1;
    v->generation = get32(h + OFF_GENERATION);
    v->round = get32(h + OFF_ROUND);
    v->payload_bytes = payload;
    memcpy(v->hash, h + OFF_HASH, TFD_PARAM_HASH_BYTES);
    return TFD_OK;
}

/* Index of the newest valid view among v[0..1] that passes `want` (NULL: any), or -1. */
static int newest(const slot_view_t v[2], const uint8_t *hash, size_t len)
{
    int best = -1;
    for (int i = 0; i < 2; ++i) {
        if (!v[i].valid) continue;
        if (hash && (memcmp(v[i].hash, hash, TFD_PARAM_HASH_BYTES) != 0 || v[i].payload_bytes != len)) {
            continue;
        }
        if (best < 0 || newer(v[i].generation, v[best].generation)) best = i;
    }
    return best;
}

tfd_status_t tfd_param_store_init(tfd_param_store_t *s, uint32_t base, uint32_t payload_max)
{
    TFD_ENSURE(s != NULL, TFD_ERR_ARG);
    memset(s, 0, sizeof *s);
    const size_t unit = tfd_port_storage_erase_unit();
    const size_t size = tfd_port_storage_size();
    TFD_ENSURE(unit > 0 && base % unit == 0, TFD_ERR_ARG);
    TFD_ENSURE(payload_max <= 0x7FFFFFFFu - TFD_PARAM_RECORD_HEADER - unit, TFD_ERR_STORAGE);
    const size_t record = (size_t)TFD_PARAM_RECORD_HEADER + payload_max;
    const size_t slot = (record + unit - 1) / unit * unit;
    TFD_ENSURE(base <= size && 2 * slot <= size - base, TFD_ERR_STORAGE);
    s->base = base;
    s->slot_bytes = (uint32_t)slot;
    s->payload_max = (uint32_t)(slot - TFD_PARAM_RECORD_HEADER);
    return TFD_OK;
}

uint32_t tfd_param_store_bytes(const tfd_param_store_t *s)
{
    return 2u * s->slot_bytes;
}

tfd_status_t tfd_param_store_load(const tfd_param_store_t *s, const uint8_t hash[TFD_PARAM_HASH_BYTES],
                                  void *out, size_t len, tfd_param_meta_t *meta)
{
    TFD_ENSURE(s != NULL && s->slot_bytes != 0 && hash != NULL && meta != NULL, TFD_ERR_ARG);
    TFD_ENSURE(out != NULL || len == 0, TFD_ERR_ARG);
    memset(meta, 0, sizeof *meta);
    slot_view_t v[2];
    TFD_TRY(view_slot(s, 0, &v[0]));
    TFD_TRY(view_slot(s, 1, &v[1]));
    const int best = newest(v, hash, len);
    if (best < 0) return TFD_OK;
    TFD_TRY(tfd_port_storage_read(slot_base(s, (unsigned)best) + TFD_PARAM_RECORD_HEADER, out, len));
    /* The storage could change between the check and the copy only through
     * this module; still, what is returned is checked once more. */
    uint8_t h[TFD_PARAM_RECORD_HEADER];
    TFD_TRY(tfd_port_storage_read(slot_base(s, (unsigned)best), h, sizeof h));
    TFD_ENSURE(tfd_crc32(0, (const uint8_t *)out, len) == get32(h + OFF_PAYLOAD_CRC), TFD_ERR_STORAGE);
    meta->found = 1;
    meta->slot = (uint8_t)best;
    meta->generation = v[best].generation;
    meta->round = v[best].round;
    meta->payload_bytes = v[best].payload_bytes;
    return TFD_OK;
}

tfd_status_t tfd_param_store_save(const tfd_param_store_t *s, const uint8_t hash[TFD_PARAM_HASH_BYTES],
                                  uint32_t round, const void *data, size_t len, tfd_param_meta_t *meta)
{
    TFD_ENSURE(s != NULL && s->slot_bytes != 0 && hash != NULL, TFD_ERR_ARG);
    TFD_ENSURE(data != NULL || len == 0, TFD_ERR_ARG);
    TFD_ENSURE(len <= s->payload_max, TFD_ERR_OVERFLOW);
    slot_view_t v[2];
    TFD_TRY(view_slot(s, 0, &v[0]));
    TFD_TRY(view_slot(s, 1, &v[1]));
    /* Keep the newest valid record, whatever model it is for; write the other slot. */
    const int keep = newest(v, NULL, 0);
    const unsigned target = keep == 0 ? 1u : 0u;
    const uint32_t generation = keep < 0 ? 1u : v[keep].generation + 1u;
    const uint32_t at = slot_base(s, target);

    TFD_TRY(tfd_port_storage_erase(at, s->slot_bytes));
    TFD_TRY(tfd_port_storage_write(at + TFD_PARAM_RECORD_HEADER, data, len));

    uint8_t h[TFD_PARAM_RECORD_HEADER];
    memset(h, 0xFF, sizeof h); /* bytes past the CRC stay erased */
    put32(h + OFF_MAGIC, TFD_PARAM_MAGIC);
    put16(h + OFF_VERSION, (uint16_t)TFD_PARAM_RECORD_VERSION);
    put16(h + OFF_HEADER_BYTES, (uint16_t)TFD_PARAM_RECORD_HEADER);
    put32(h + OFF_GENERATION, generation);
    put32(h + OFF_ROUND, round);
    put32(h + OFF_PAYLOAD_BYTES, (uint32_t)len);
    put32(h + OFF_PAYLOAD_CRC, tfd_crc32(0, (const uint8_t *)data, len));
    memcpy(h + OFF_HASH, hash, TFD_PARAM_HASH_BYTES);
    put32(h + OFF_HEADER_CRC, tfd_crc32(0, h, HEADER_CRC_SPAN));
    TFD_TRY(tfd_port_storage_write(at, h, OFF_HEADER_CRC + 4u));

    /* Read back: the new record must check out (program-verify of the whole record). */
    slot_view_t check;
    TFD_TRY(view_slot(s, target, &check));
    TFD_ENSURE(check.valid && check.generation == generation && check.payload_bytes == len,
               TFD_ERR_STORAGE);
    if (meta) {
        *meta = (tfd_param_meta_t){.found = 1, .slot = (uint8_t)target, .generation = generation,
                                   .round = round, .payload_bytes = (uint32_t)len};
    }
    return TFD_OK;
}
