/* tinyfed — the table-driven message codec.  Everything it knows about
 * messages comes from the descriptor table generated here from tfd/wire.def. */
#include <string.h>

#include "tfd/frame.h"
#include "tfd/wire.h"

/* ---- descriptor table ---------------------------------------------------------- */
#define TFD_MSG(name, id, dir, cls, gate) static const tfd_wire_field_t k_fields_##name[] = {
#define TFD_FIELD(msg, type, field)                                                 \
    {TFD_WT_##type, 0, 1, (uint16_t)offsetof(tfd_wire_layout_##msg##_t, field),    \
     (uint16_t)offsetof(tfd_msg_##msg##_t, field), 0},
#define TFD_ARRAY(msg, type, field, count)                                          \
    {TFD_WT_##type, 0, TFD_WIRE_##count, (uint16_t)offsetof(tfd_wire_layout_##msg##_t, field), \
     (uint16_t)offsetof(tfd_msg_##msg##_t, field), 0},
#define TFD_TAIL(msg, type, field, max)                                              \
    {TFD_WT_##type, 1, TFD_WIRE_##max, TFD_WIRE_FIXED_##msg,                         \
     (uint16_t)offsetof(tfd_msg_##msg##_t, field), (uint16_t)offsetof(tfd_msg_##msg##_t, field##_len)},
#define TFD_END(msg) {TFD_WT_END, 0, 0, 0, 0, 0}};
#include "tfd/wire.def"

#define TFD_MSG(name, id, dir, cls, gate) enum { k_nfields_##name = 0
#define TFD_FIELD(msg, type, field) +1
#define TFD_ARRAY(msg, type, field, count) +1
#define TFD_TAIL(msg, type, field, max) +1
#define TFD_END(msg) };
#include "tfd/wire.def"

const tfd_wire_msg_t tfd_wire_msgs[] = {
#define TFD_MSG(name, id, dir, cls, gate)                                              \
    {#name, (id), TFD_DIR_##dir, TFD_CLASS_##cls, TFD_GATE_##gate, TFD_WIRE_FIXED_##name, \
     TFD_WIRE_TAILMAX_##name, sizeof(tfd_msg_##name##_t), k_nfields_##name, k_fields_##name},
#include "tfd/wire.def"
};
const size_t tfd_wire_msg_count = sizeof tfd_wire_msgs / sizeof tfd_wire_msgs[0];

const tfd_wire_purpose_t tfd_wire_purposes[] = {
#define TFD_PURPOSE(name, id, dir, cls, gate) {#name, (id), TFD_DIR_##dir, TFD_CLASS_##cls, TFD_GATE_##gate},
#include "tfd/wire.def"
};
const size_t tfd_wire_purpose_count = sizeof tfd_wire_purposes / sizeof tfd_wire_purposes[0];

static int gate_enabled(uint8_t gate)
{
    return gate == TFD_GATE_ALWAYS || (gate == TFD_GATE_TEST && TFD_TEST_MESSAGES);
}

const tfd_wire_msg_t *tfd_wire_find(uint8_t id)
{
    for (size_t i = 0; i < tfd_wire_msg_count; ++i) {
        if (tfd_wire_msgs[i].id == id) {
            return gate_enabled(tfd_wire_msgs[i].gate) ? &tfd_wire_msgs[i] : NULL;
        }
    }
    return NULL;
}

const tfd_wire_purpose_t *tfd_wire_find_purpose(uint8_t id)
{
    for (size_t i = 0; i < tfd_wire_purpose_count; ++i) {
        if (tfd_wire_purposes[i].id == id) {
            return gate_enabled(tfd_wire_purposes[i].gate) ? &tfd_wire_purposes[i] : NULL;
        }
    }
    return NULL;
}

/* ---- canonical table CRC (host: tinyfed_host.wire.WireTable.table_crc) ---------- */
static uint32_t crc_u8(uint32_t crc, uint8_t v)
{
    return tfd_crc32(crc, &v, 1);
}

static uint32_t crc_u16(uint32_t crc, uint16_t v)
{
    uint8_t b[2];
    tfd_put_u16(b, v);
    return tfd_crc32(crc, b, 2);
}

uint32_t tfd_wire_table_crc(void)
{
    uint32_t crc = 0;
    crc = crc_u16(crc, TFD_WIRE_FRAME_VERSION);
    crc = crc_u16(crc, TFD_WIRE_PROTO_VERSION);
    crc = crc_u16(crc, TFD_WIRE_MAX_PAYLOAD);
#define TFD_HEADER(type, field) crc = crc_u8(crc, TFD_WT_##type);
#include "tfd/wire.def"
    for (size_t i = 0; i < tfd_wire_msg_count; ++i) {
        const tfd_wire_msg_t *m = &tfd_wire_msgs[i];
        crc = crc_u8(crc, m->id);
        crc = crc_u8(crc, m->dir);
        crc = crc_u8(crc, m->cls);
        crc = crc_u8(crc, m->gate);
        crc = crc_u16(crc, m->fixed_bytes);
        crc = crc_u16(crc, m->tail_max);
        crc = crc_u8(crc, m->n_fields);
        for (const tfd_wire_field_t *f = m->fields; f->type != TFD_WT_END; ++f) {
            crc = crc_u8(crc, f->type);
            crc = crc_u8(crc, f->is_tail);
            crc = crc_u16(crc, f->count);
            crc = crc_u16(crc, f->wire_off);
        }
    }
    for (size_t i = 0; i < tfd_wire_purpose_count; ++i) {
        const tfd_wire_purpose_t *p = &tfd_wire_purposes[i];
        crc = crc_u8(crc, p->id);
        crc = crc_u8(crc, p->dir);
        crc = crc_u8(crc, p->cls);
        crc = crc_u8(crc, p->gate);
    }
    return crc;
}

/* ---- codec ----------------------------------------------------------------------- */
static size_t elem_size(uint8_t type)
{
    switch (type) {
    case TFD_WT_U8:
    case TFD_WT_I8:
    case TFD_WT_CHAR: return 1;
    case TFD_WT_U16:
    case TFD_WT_I16: return 2;
    case TFD_WT_U32:
    case TFD_WT_I32:
    case TFD_WT_F32: return 4;
    default: return 0;
    }
}

/* One element, native (host byte order, natural type) -> wire (little endian).
 * Native and wire element sizes are equal for every type (checked below). */
static void put_elem(uint8_t type, uint8_t *wire, const uint8_t *native)
{
    switch (elem_size(type)) {
    case 1: wire[0] = native[0]; break;
    case 2: {
        uint16_t v;
        memcpy(&v, native, 2);
        tfd_put_u16(wire, v);
        break;
    }
    case 4: {
        uint32_t v;
        memcpy(&v, native, 4);
        tfd_put_u32(wire, v);
        break;
    }
    default: break;
    }
}

static void get_elem(uint8_t type, const uint8_t *wire, uint8_t *native)
{
    switch (elem_size(type)) {
    case 1: native[0] = wire[0]; break;
    case 2: {
        const uint16_t v = tfd_get_u16(wire);
        memcpy(native, &v, 2);
        break;
    }
    case 4: {
        const uint32_t v = tfd_get_u32(wire);
        memcpy(native, &v, 4);
        break;
    }
    default: break;
    }
}

_Static_assert(sizeof(float) == 4 && sizeof(uint32_t) == 4, "F32 must be IEEE binary32");

tfd_status_t tfd_wire_encode(uint8_t id, const void *msg, size_t msg_size, uint8_t *out,
                             size_t cap, size_t *out_len)
{
    const tfd_wire_msg_t *m = tfd_wire_find(id);
    TFD_ENSURE(m != NULL, TFD_ERR_MSG_UNKNOWN);
    TFD_ENSURE(msg != NULL && out != NULL && out_len != NULL, TFD_ERR_ARG);
    TFD_ENSURE(msg_size == m->native_size, TFD_ERR_ARG);
    TFD_ENSURE(cap >= m->fixed_bytes, TFD_ERR_FRAME_SIZE);
    const uint8_t *native = (const uint8_t *)msg;
    size_t total = m->fixed_bytes;
    for (const tfd_wire_field_t *f = m->fields; f->type != TFD_WT_END; ++f) {
        const size_t es = elem_size(f->type);
        if (f->is_tail) {
            const uint8_t *data;
            uint16_t n;
            memcpy(&data, native + f->native_off, sizeof data);
            memcpy(&n, native + f->len_off, sizeof n);
            TFD_ENSURE(n <= f->count, TFD_ERR_MSG_LENGTH);
            TFD_ENSURE(n == 0 || data != NULL, TFD_ERR_ARG);
            TFD_ENSURE(cap - total >= (size_t)n * es, TFD_ERR_FRAME_SIZE);
            if (n) memmove(out + f->wire_off, data, (size_t)n * es);
            total += (size_t)n * es;
        } else {
            for (uint16_t i = 0; i < f->count; ++i) {
                put_elem(f->type, out + f->wire_off + (size_t)i * es, native + f->native_off + (size_t)i * es);
            }
        }
    }
    *out_len = total;
    return TFD_OK;
}

tfd_status_t tfd_wire_decode(uint8_t id, const uint8_t *payload, size_t len, void *msg,
                             size_t msg_size)
{
    const tfd_wire_msg_t *m = tfd_wire_find(id);
    TFD_ENSURE(m != NULL, TFD_ERR_MSG_UNKNOWN);
    TFD_ENSURE(msg != NULL && (payload != NULL || len == 0), TFD_ERR_ARG);
    TFD_ENSURE(msg_size == m->native_size, TFD_ERR_ARG);
    /* Length first: nothing is read before it is known to be inside the payload. */
    TFD_ENSURE(len >= m->fixed_bytes && len - m->fixed_bytes <= m->tail_max, TFD_ERR_MSG_LENGTH);
    uint8_t *native = (uint8_t *)msg;
    memset(native, 0, msg_size);
    for (const tfd_wire_field_t *f = m->fields; f->type != TFD_WT_END; ++f) {
        const size_t es = elem_size(f->type);
        if (f->is_tail) {
            const size_t bytes = len - m->fixed_bytes;
            TFD_ENSURE(es == 1 && bytes <= f->count, TFD_ERR_MSG_LENGTH);
            const uint8_t *data = bytes ? payload + f->wire_off : NULL;
            const uint16_t n = (uint16_t)bytes;
            memcpy(native + f->native_off, &data, sizeof data);
            memcpy(native + f->len_off, &n, sizeof n);
        } else {
            for (uint16_t i = 0; i < f->count; ++i) {
                get_elem(f->type, payload + f->wire_off + (size_t)i * es, native + f->native_off + (size_t)i * es);
            }
        }
    }
    return TFD_OK;
}

void tfd_wire_set_str(char *field, size_t field_len, const char *text)
{
    size_t i = 0;
    if (text) {
        for (; i < field_len && text[i] != '\0'; ++i) field[i] = text[i];
    }
    for (; i < field_len; ++i) field[i] = '\0';
}
