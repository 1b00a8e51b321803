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

/* ---- bodies and records --------------------------------------------------------- */
#define TFD_RECORD(name) static const tfd_wire_field_t k_sfields_##name[] = {
#define TFD_BODY(name, msg, dir, purpose) static const tfd_wire_field_t k_sfields_##name[] = {
#define TFD_BFIELD(s, type, field)                                                        \
    {TFD_WT_##type, 0, 1, (uint16_t)offsetof(tfd_wire_layout_##s##_t, field),             \
     (uint16_t)offsetof(struct tfd_wstruct_##s, field), 0},
#define TFD_BARRAY(s, type, field, count)                                                   \
    {TFD_WT_##type, 0, TFD_WIRE_##count, (uint16_t)offsetof(tfd_wire_layout_##s##_t, field), \
     (uint16_t)offsetof(struct tfd_wstruct_##s, field), 0},
#define TFD_BEND(s) {TFD_WT_END, 0, 0, 0, 0, 0}};
#include "tfd/wire.def"

#define TFD_RECORD(name) static const tfd_wire_repeat_t k_repeats_##name[] = {
#define TFD_BODY(name, msg, dir, purpose) static const tfd_wire_repeat_t k_repeats_##name[] = {
#define TFD_REPEAT(s, rec, field, n, max)                                                               \
    {&tfd_wire_struct_##rec, (uint16_t)offsetof(tfd_wire_layout_##s##_t, n),                           \
     (uint8_t)sizeof(((struct tfd_wstruct_##s *)0)->n), (uint32_t)TFD_WIRE_##max,                       \
     (uint16_t)offsetof(struct tfd_wstruct_##s, field), (uint16_t)offsetof(struct tfd_wstruct_##s, field##_count)},
#define TFD_REST(s, rec, field, max)                                                                    \
    {&tfd_wire_struct_##rec, 0, 0, (uint32_t)TFD_WIRE_##max, (uint16_t)offsetof(struct tfd_wstruct_##s, field), \
     (uint16_t)offsetof(struct tfd_wstruct_##s, field##_count)},
#define TFD_BEND(s) {NULL, 0, 0, 0, 0, 0}};
#include "tfd/wire.def"

#define TFD_RECORD(name) enum { k_nsfields_##name = 0
#define TFD_BODY(name, msg, dir, purpose) enum { k_nsfields_##name = 0
#define TFD_BFIELD(s, type, field) +1
#define TFD_BARRAY(s, type, field, count) +1
#define TFD_BEND(s) };
#include "tfd/wire.def"

#define TFD_RECORD(name) enum { k_nrepeats_##name = 0
#define TFD_BODY(name, msg, dir, purpose) enum { k_nrepeats_##name = 0
#define TFD_REPEAT(s, rec, field, n, max) +1
#define TFD_REST(s, rec, field, max) +1
#define TFD_BEND(s) };
#include "tfd/wire.def"

#define TFD_RECORD(name)                                                                                 \
    const tfd_wire_struct_t tfd_wire_struct_##name = {#name, 0, 0, 0, 0, TFD_WIRE_FIXED_##name,          \
                                                      sizeof(struct tfd_wstruct_##name), k_nsfields_##name, \
                                                      k_nrepeats_##name, k_sfields_##name, k_repeats_##name};
#define TFD_BODY(name, msg, dir, purpose)                                                                \
    const tfd_wire_struct_t tfd_wire_struct_##name = {#name, 1, TFD_MSG_##msg, TFD_DIR_##dir,            \
                                                      TFD_PURPOSE_##purpose, TFD_WIRE_FIXED_##name,      \
                                                      sizeof(struct tfd_wstruct_##name), k_nsfields_##name, \
                                                      k_nrepeats_##name, k_sfields_##name, k_repeats_##name};
#include "tfd/wire.def"

const tfd_wire_struct_t *const tfd_wire_structs[] = {
#define TFD_RECORD(name) &tfd_wire_struct_##name,
#define TFD_BODY(name, msg, dir, purpose) &tfd_wire_struct_##name,
#include "tfd/wire.def"
};
const size_t tfd_wire_struct_count = sizeof tfd_wire_structs / sizeof tfd_wire_structs[0];

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

/* ---- canonical table CRC (host: tinyfed_toolchain.facts.wire_table.WireTable.table_crc) ---------- */
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
    for (size_t i = 0; i < tfd_wire_struct_count; ++i) {
        const tfd_wire_struct_t *s = tfd_wire_structs[i];
        crc = crc_u8(crc, s->is_body);
        crc = crc_u8(crc, s->msg);
        crc = crc_u8(crc, s->dir);
        crc = crc_u8(crc, s->purpose);
        crc = crc_u16(crc, s->fixed_bytes);
        crc = crc_u8(crc, s->n_fields);
        for (const tfd_wire_field_t *f = s->fields; f->type != TFD_WT_END; ++f) {
            crc = crc_u8(crc, f->type);
            crc = crc_u16(crc, f->count);
            crc = crc_u16(crc, f->wire_off);
        }
        crc = crc_u8(crc, s->n_repeats);
        for (unsigned r = 0; r < s->n_repeats; ++r) {
            const tfd_wire_repeat_t *g = &s->repeats[r];
            uint8_t rec_index = 0xFF;
            for (size_t j = 0; j < tfd_wire_struct_count; ++j) {
                if (tfd_wire_structs[j] == g->record) rec_index = (uint8_t)j;
            }
            uint8_t max[4];
            tfd_put_u32(max, g->max);
            crc = crc_u8(crc, rec_index);
            crc = crc_u16(crc, g->count_off);
            crc = crc_u8(crc, g->count_size);
            crc = tfd_crc32(crc, max, 4);
        }
    }
    crc = crc_u8(crc, (uint8_t)TFD_SA_SUMMED_COUNT);
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

/* ---- body codec ------------------------------------------------------------------ */
const tfd_wire_struct_t *tfd_wire_find_body(uint8_t msg, uint8_t dir)
{
    for (size_t i = 0; i < tfd_wire_struct_count; ++i) {
        const tfd_wire_struct_t *s = tfd_wire_structs[i];
        if (s->is_body && s->msg == msg && s->dir == dir) return s;
    }
    return NULL;
}

static uint32_t get_count(const uint8_t *p, uint8_t size)
{
    return size == 1 ? p[0] : size == 2 ? tfd_get_u16(p) : tfd_get_u32(p);
}

static void put_count(uint8_t *p, uint8_t size, uint32_t v)
{
    if (size == 1) p[0] = (uint8_t)v;
    else if (size == 2) tfd_put_u16(p, (uint16_t)v);
    else tfd_put_u32(p, v);
}

static int count_fits(uint32_t count, uint8_t size)
{
    return size == 0 || size >= 4 || count < (UINT32_C(1) << (8u * size)); /* size 0: TFD_REST, no count field */
}

static void get_fields(const tfd_wire_field_t *fields, const uint8_t *wire, uint8_t *native)
{
    for (const tfd_wire_field_t *f = fields; f->type != TFD_WT_END; ++f) {
        const size_t es = elem_size(f->type);
        for (uint16_t i = 0; i < f->count; ++i) {
            get_elem(f->type, wire + f->wire_off + (size_t)i * es, native + f->native_off + (size_t)i * es);
        }
    }
}

static void put_fields(const tfd_wire_field_t *fields, const uint8_t *native, uint8_t *wire)
{
    for (const tfd_wire_field_t *f = fields; f->type != TFD_WT_END; ++f) {
        const size_t es = elem_size(f->type);
        for (uint16_t i = 0; i < f->count; ++i) {
            put_elem(f->type, wire + f->wire_off + (size_t)i * es, native + f->native_off + (size_t)i * es);
        }
    }
}

static uint32_t native_count(const tfd_wire_repeat_t *g, const uint8_t *native)
{
    uint32_t n;
    memcpy(&n, native + g->native_count_off, sizeof n);
    return n;
}

tfd_status_t tfd_wire_body_decode(const tfd_wire_struct_t *d, const uint8_t *p, size_t len, void *native,
                                  size_t native_size)
{
    TFD_ENSURE(d != NULL && d->is_body && native != NULL && (p != NULL || len == 0), TFD_ERR_ARG);
    TFD_ENSURE(native_size == d->native_size, TFD_ERR_ARG);
    /* Lengths first: every count is read inside the fixed part, and the
     * records it announces must fill the rest exactly. */
    TFD_ENSURE(len >= d->fixed_bytes, TFD_ERR_MSG_LENGTH);
    size_t off = d->fixed_bytes;
    for (unsigned r = 0; r < d->n_repeats; ++r) {
        const tfd_wire_repeat_t *g = &d->repeats[r];
        const size_t rs = g->record->fixed_bytes;
        uint64_t count;
        if (g->count_size) {
            count = get_count(p + g->count_off, g->count_size);
        } else {
            TFD_ENSURE((len - off) % rs == 0, TFD_ERR_MSG_LENGTH);
            count = (len - off) / rs;
        }
        TFD_ENSURE(count <= g->max && count * rs <= len - off, TFD_ERR_MSG_LENGTH);
        off += (size_t)(count * rs);
    }
    TFD_ENSURE(off == len, TFD_ERR_MSG_LENGTH);
    uint8_t *out = (uint8_t *)native;
    memset(out, 0, native_size);
    get_fields(d->fields, p, out);
    off = d->fixed_bytes;
    for (unsigned r = 0; r < d->n_repeats; ++r) {
        const tfd_wire_repeat_t *g = &d->repeats[r];
        const size_t rs = g->record->fixed_bytes;
        const uint32_t count = g->count_size ? get_count(p + g->count_off, g->count_size)
                                             : (uint32_t)((len - off) / rs);
        const uint8_t *data = count ? p + off : NULL;
        memcpy(out + g->native_off, &data, sizeof data);
        memcpy(out + g->native_count_off, &count, sizeof count);
        off += (size_t)count * rs;
    }
    return TFD_OK;
}

tfd_status_t tfd_wire_group_offset(const tfd_wire_struct_t *d, const void *native, unsigned g, size_t *offset)
{
    TFD_ENSURE(d != NULL && d->is_body && native != NULL && offset != NULL && g < d->n_repeats, TFD_ERR_ARG);
    uint64_t off = d->fixed_bytes;
    for (unsigned r = 0; r < g; ++r) {
        const uint32_t n = native_count(&d->repeats[r], (const uint8_t *)native);
        TFD_ENSURE(n <= d->repeats[r].max, TFD_ERR_MSG_LENGTH);
        off += (uint64_t)n * d->repeats[r].record->fixed_bytes;
    }
    TFD_ENSURE(off <= SIZE_MAX, TFD_ERR_OVERFLOW);
    *offset = (size_t)off;
    return TFD_OK;
}

tfd_status_t tfd_wire_body_size(const tfd_wire_struct_t *d, const void *native, size_t native_size, size_t *size)
{
    TFD_ENSURE(d != NULL && d->is_body && native != NULL && size != NULL && native_size == d->native_size,
               TFD_ERR_ARG);
    uint64_t total = d->fixed_bytes;
    for (unsigned r = 0; r < d->n_repeats; ++r) {
        const tfd_wire_repeat_t *g = &d->repeats[r];
        const uint32_t n = native_count(g, (const uint8_t *)native);
        TFD_ENSURE(n <= g->max && count_fits(n, g->count_size), TFD_ERR_MSG_LENGTH);
        total += (uint64_t)n * g->record->fixed_bytes;
    }
    TFD_ENSURE(total <= SIZE_MAX, TFD_ERR_OVERFLOW);
    *size = (size_t)total;
    return TFD_OK;
}

tfd_status_t tfd_wire_body_encode(const tfd_wire_struct_t *d, const void *native, size_t native_size, uint8_t *out,
                                  size_t cap, size_t *out_len)
{
    size_t total = 0;
    TFD_TRY(tfd_wire_body_size(d, native, native_size, &total));
    TFD_ENSURE(out != NULL && out_len != NULL, TFD_ERR_ARG);
    TFD_ENSURE(cap >= total, TFD_ERR_OVERFLOW);
    const uint8_t *in = (const uint8_t *)native;
    put_fields(d->fields, in, out);
    size_t off = d->fixed_bytes;
    for (unsigned r = 0; r < d->n_repeats; ++r) {
        const tfd_wire_repeat_t *g = &d->repeats[r];
        const uint32_t n = native_count(g, in);
        const size_t bytes = (size_t)n * g->record->fixed_bytes;
        const uint8_t *data;
        memcpy(&data, in + g->native_off, sizeof data);
        if (g->count_size) put_count(out + g->count_off, g->count_size, n);
        if (data != NULL && bytes) memmove(out + off, data, bytes);
        off += bytes;
    }
    *out_len = total;
    return TFD_OK;
}

tfd_status_t tfd_wire_record_get(const tfd_wire_struct_t *rec, const uint8_t *group, uint32_t count, uint32_t i,
                                 void *native, size_t native_size)
{
    TFD_ENSURE(rec != NULL && !rec->is_body && native != NULL && native_size == rec->native_size, TFD_ERR_ARG);
    TFD_ENSURE(group != NULL && i < count, TFD_ERR_ARG);
    memset(native, 0, native_size);
    get_fields(rec->fields, group + (size_t)i * rec->fixed_bytes, (uint8_t *)native);
    return TFD_OK;
}

void tfd_wire_record_put(const tfd_wire_struct_t *rec, const void *native, uint8_t *dst)
{
    put_fields(rec->fields, (const uint8_t *)native, dst);
}

void tfd_wire_set_str(char *field, size_t field_len, const char *text)
{
    size_t i = 0;
    if (text) {
        for (; i < field_len && text[i] != '\0'; ++i) field[i] = text[i];
    }
    for (; i < field_len; ++i) field[i] = '\0';
}
