/* tinyfed — trained parameters in persistent storage: two slots (A/B), each a
 * header + payload protected by CRC-32, so a reset at ANY point of a save
 * leaves the previous good copy loadable.
 *
 * Layout (inside the port's storage, tfd/port.h):
 *
 *   [base, base + slot_bytes)                 slot 0
 *   [base + slot_bytes, base + 2*slot_bytes)  slot 1
 *
 * slot_bytes is the record size (TFD_PARAM_RECORD_HEADER + payload_max)
 * rounded up to the erase unit, so the two slots never share an erase unit.
 * A slot holds one record:
 *
 *   offset 0   header (TFD_PARAM_RECORD_HEADER = 48 bytes, little endian)
 *                u32 magic            TFD_PARAM_MAGIC ("TFDP")
 *                u16 version          TFD_PARAM_RECORD_VERSION
 *                u16 header_bytes     48
 *                u32 generation       +1 on every save (the newest valid record wins)
 *                u32 round            the federated round the parameters belong to
 *                u32 payload_bytes
 *                u32 payload_crc      CRC-32 (zlib) of the payload
 *                u8  model_hash[16]   the model the parameters are for
 *                u32 header_crc       CRC-32 of the 40 bytes before it
 *                u8  reserved[4]      left erased (0xFF)
 *   offset 48  payload (payload_bytes)
 *
 * Save = erase the slot that does NOT hold the newest valid record, program
 * the payload, then the header (header last: a slot has a header only once its
 * payload is complete), then read both back and check the CRCs.  Load = read
 * both slots, keep those whose magic, version, header CRC, payload CRC, model
 * hash and size check out, take the newest generation.  A reset while erasing,
 * while programming the payload or while programming the header leaves the
 * target slot invalid (or, before its erase completed, still holding an older
 * record) and the other slot untouched, so load() returns the previous copy.
 * tests/test_storage.py sweeps a simulated power cut over every programmed
 * byte and every erase step of a save.
 *
 * No allocation: the store needs no buffer; CRCs are computed by reading the
 * storage back in small pieces.
 */
#ifndef TFD_PARAM_STORE_H
#define TFD_PARAM_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/status.h"

#define TFD_PARAM_MAGIC 0x50444654u /* "TFDP" little endian */
#define TFD_PARAM_RECORD_VERSION 1u
#define TFD_PARAM_RECORD_HEADER 48u
#define TFD_PARAM_HASH_BYTES 16u

typedef struct {
    uint32_t base;        /* first byte of slot 0 in the port's storage */
    uint32_t slot_bytes;  /* bytes per slot (a multiple of the erase unit) */
    uint32_t payload_max; /* largest payload a slot holds */
} tfd_param_store_t;

/* What a valid record says about itself. */
typedef struct {
    uint8_t found;        /* 1: a valid record was loaded */
    uint8_t slot;         /* which slot it came from (0 / 1) */
    uint32_t generation;
    uint32_t round;
    uint32_t payload_bytes;
} tfd_param_meta_t;

/* Place a store for payloads of up to `payload_max` bytes at `base` (a
 * multiple of the erase unit) of the port's storage; it takes 2 * slot_bytes
 * bytes (tfd_param_store_bytes).  TFD_ERR_STORAGE if it does not fit. */
TFD_CHECK_RESULT tfd_status_t tfd_param_store_init(tfd_param_store_t *s, uint32_t base,
                                                   uint32_t payload_max);

/* Storage bytes the store occupies (both slots). */
uint32_t tfd_param_store_bytes(const tfd_param_store_t *s);

/* Load the newest valid record for model `hash` with exactly `len` payload
 * bytes into out[len].  No valid record: TFD_OK with meta->found = 0 and
 * `out` untouched. */
TFD_CHECK_RESULT tfd_status_t tfd_param_store_load(const tfd_param_store_t *s,
                                                   const uint8_t hash[TFD_PARAM_HASH_BYTES],
                                                   void *out, size_t len, tfd_param_meta_t *meta);

/* Save data[len] as the newest record (generation = newest valid + 1) for
 * model `hash` and federated round `round`.  On failure (TFD_ERR_STORAGE,
 * TFD_ERR_ARG) the previously loadable record is still the one load() finds.
 * `meta` (may be NULL) receives the new record's description. */
TFD_CHECK_RESULT tfd_status_t tfd_param_store_save(const tfd_param_store_t *s,
                                                   const uint8_t hash[TFD_PARAM_HASH_BYTES],
                                                   uint32_t round, const void *data, size_t len,
                                                   tfd_param_meta_t *meta);

#endif /* TFD_PARAM_STORE_H */
