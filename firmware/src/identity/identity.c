/* tinyfed — device identity and the fleet manifest (tfd/identity.h). */
#include "tfd/identity.h"

#include <string.h>

#include "monocypher.h"
#include "tfd/pk.h"
#include "tfd/wire.h"

/* No record linked in (an image built without one): an empty record, no identity.
 * A build's identity_data.c defines the strong symbols. */
__attribute__((weak)) const uint8_t tfd_identity_blob[1] = {0};
__attribute__((weak)) const size_t tfd_identity_blob_len = 0;

void tfd_identity_manifest_digest(uint8_t digest[32], const uint8_t *manifest, size_t signed_len)
{
    crypto_blake2b_ctx ctx;
    crypto_blake2b_init(&ctx, 32);
    crypto_blake2b_update(&ctx, (const uint8_t *)TFD_ID_DOMAIN_MANIFEST, sizeof TFD_ID_DOMAIN_MANIFEST - 1u);
    crypto_blake2b_update(&ctx, manifest, signed_len);
    crypto_blake2b_final(&ctx, digest);
}

void tfd_identity_wipe(tfd_identity_t *id)
{
    if (id != NULL) crypto_wipe(id, sizeof *id);
}

tfd_status_t tfd_identity_init(tfd_identity_t *id, const uint8_t *rec, size_t len)
{
    TFD_ENSURE(id != NULL, TFD_ERR_ARG);
    tfd_identity_wipe(id);
    TFD_ENSURE(rec != NULL && len >= TFD_ID_RECORD_BYTES(1), TFD_ERR_MSG_LENGTH);
    return tfd_identity_init_parts(id, rec, TFD_ID_HEADER_BYTES, rec + TFD_ID_HEADER_BYTES,
                                   len - TFD_ID_HEADER_BYTES);
}

tfd_status_t tfd_identity_init_parts(tfd_identity_t *id, const uint8_t *rec, size_t head_len, const uint8_t *man,
                                     size_t man_len)
{
    TFD_ENSURE(id != NULL, TFD_ERR_ARG);
    tfd_identity_wipe(id);
    TFD_ENSURE(rec != NULL && man != NULL && head_len == TFD_ID_HEADER_BYTES &&
                   man_len >= TFD_ID_RECORD_BYTES(1) - TFD_ID_HEADER_BYTES,
               TFD_ERR_MSG_LENGTH);
    TFD_ENSURE(tfd_get_u32(rec) == TFD_ID_MAGIC && tfd_get_u16(rec + 4) == TFD_ID_VERSION && tfd_get_u16(rec + 6) == 0,
               TFD_ERR_ARG);
    const unsigned n = tfd_get_u16(man + 20);
    TFD_ENSURE(n >= 1 && n <= TFD_ID_MAX_DEVICES && man_len == TFD_ID_RECORD_BYTES(n) - TFD_ID_HEADER_BYTES,
               TFD_ERR_MSG_LENGTH);
    TFD_ENSURE(tfd_get_u16(man + 28) <= TFD_WIRE_SA_WEIGHT_ONE && tfd_get_u16(man + 30) == 0, TFD_ERR_ARG);
    const uint32_t device_id = tfd_get_u32(rec + 8);
    const uint8_t *entries = man + TFD_ID_MANIFEST_HEAD_BYTES;
    uint32_t prev = 0;
    int self = -1;
    for (unsigned i = 0; i < n; ++i) {
        const uint32_t e = tfd_get_u32(entries + (size_t)i * TFD_ID_ENTRY_BYTES);
        TFD_ENSURE(e > prev, TFD_ERR_ARG); /* strictly increasing, nonzero */
        prev = e;
        if (e == device_id) self = (int)i;
    }
    TFD_ENSURE(self >= 0, TFD_ERR_ARG); /* this device is not in its own manifest */
    /* the fleet signature over the manifest, as the toolchain made it */
    const size_t signed_len = TFD_ID_MANIFEST_HEAD_BYTES + (size_t)n * TFD_ID_ENTRY_BYTES;
    uint8_t h[32];
    tfd_identity_manifest_digest(h, man, signed_len);
    TFD_ENSURE(tfd_pk_eddsa_check(man + signed_len, rec + 44, h, sizeof h) == 0, TFD_ERR_CRYPTO);
    /* the seed must give this device's manifest key */
    uint8_t seed[32];
    memcpy(seed, rec + 12, sizeof seed);
    crypto_eddsa_key_pair(id->secret_key, id->public_key, seed); /* wipes seed */
    const uint8_t *own_pk = entries + (size_t)self * TFD_ID_ENTRY_BYTES + 4;
    if (crypto_verify32(own_pk, id->public_key) != 0) {
        tfd_identity_wipe(id);
        return TFD_ERR_CRYPTO;
    }
    id->device_id = device_id;
    memcpy(id->fleet_pk, rec + 44, 32);
    memcpy(id->fleet_id, man, 16);
    id->manifest_version = tfd_get_u32(man + 16);
    id->n = (uint16_t)n;
    id->min_neighbours = tfd_get_u16(man + 22);
    id->dp_min_z_milli = tfd_get_u32(man + 24);
    id->weight_floor = tfd_get_u16(man + 28);
    id->self_index = (uint16_t)self;
    id->entries = entries;
    memcpy(id->manifest_hash, h, sizeof h);
    id->ok = 1;
    return TFD_OK;
}

int tfd_identity_find(const tfd_identity_t *id, uint32_t device_id)
{
    if (id == NULL || !id->ok) return -1;
    unsigned lo = 0, hi = id->n;
    while (lo < hi) {
        const unsigned mid = lo + (hi - lo) / 2u;
        const uint32_t e = tfd_get_u32(id->entries + (size_t)mid * TFD_ID_ENTRY_BYTES);
        if (e == device_id) return (int)mid;
        if (e < device_id) lo = mid + 1u;
        else hi = mid;
    }
    return -1;
}

uint32_t tfd_identity_entry_id(const tfd_identity_t *id, unsigned index)
{
    return index < id->n ? tfd_get_u32(id->entries + (size_t)index * TFD_ID_ENTRY_BYTES) : 0u;
}

const uint8_t *tfd_identity_entry_pk(const tfd_identity_t *id, unsigned index)
{
    return index < id->n ? id->entries + (size_t)index * TFD_ID_ENTRY_BYTES + 4 : NULL;
}

void tfd_identity_sign(const tfd_identity_t *id, uint8_t sig[64], const uint8_t digest[32])
{
    crypto_eddsa_sign(sig, id->secret_key, digest, 32);
}

tfd_status_t tfd_identity_verify(const tfd_identity_t *id, uint32_t signer, const uint8_t sig[64],
                                 const uint8_t digest[32])
{
    const int i = tfd_identity_find(id, signer);
    TFD_ENSURE(i >= 0, TFD_ERR_ARG);
    TFD_ENSURE(tfd_pk_eddsa_check(sig, tfd_identity_entry_pk(id, (unsigned)i), digest, 32) == 0, TFD_ERR_CRYPTO);
    return TFD_OK;
}
