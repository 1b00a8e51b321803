/* tinyfed — a throwaway fleet for harnesses and benchmarks (fleet_maker.h). */
#include "tfd/fleet_maker.h"

#include <string.h>

#include "monocypher.h"
#include "tfd/wire.h"

/* a seed derived from the master seed and a label */
static void derive(uint8_t out[32], const uint8_t seed[32], uint32_t label)
{
    uint8_t l[4];
    tfd_put_u32(l, label);
    crypto_blake2b_keyed(out, 32, seed, 32, l, sizeof l);
}

tfd_status_t tfd_fleet_record(uint8_t *rec, size_t cap, size_t *len, const uint32_t *ids, unsigned n, unsigned who,
                              const uint8_t seed[32], uint16_t min_neighbours)
{
    TFD_ENSURE(rec != NULL && len != NULL && ids != NULL && n >= 1 && n <= TFD_ID_MAX_DEVICES && who < n,
               TFD_ERR_ARG);
    const size_t need = TFD_ID_RECORD_BYTES(n);
    TFD_ENSURE(cap >= need, TFD_ERR_OVERFLOW);
    uint8_t fleet_seed[32], fleet_sk[64], fleet_pk[32], dev_seed[32], sk[64], pk[32];
    derive(fleet_seed, seed, 0xF1EE7u);
    crypto_eddsa_key_pair(fleet_sk, fleet_pk, fleet_seed); /* wipes fleet_seed */
    memset(rec, 0, need);
    tfd_put_u32(rec, TFD_ID_MAGIC);
    rec[4] = (uint8_t)TFD_ID_VERSION;
    tfd_put_u32(rec + 8, ids[who]);
    memcpy(rec + 44, fleet_pk, 32);
    uint8_t *man = rec + TFD_ID_HEADER_BYTES;
    derive(man, seed, 0xF1D0u); /* fleet id: the first 16 bytes of a derived block */
    memset(man + 16, 0, 16);
    tfd_put_u32(man + 16, 1u); /* manifest version */
    tfd_put_u16(man + 20, (uint16_t)n);
    tfd_put_u16(man + 22, min_neighbours);
    tfd_put_u32(man + 24, 0u); /* no DP minimum */
    uint8_t *entries = man + TFD_ID_MANIFEST_HEAD_BYTES;
    for (unsigned i = 0; i < n; ++i) {
        derive(dev_seed, seed, ids[i]);
        if (i == who) memcpy(rec + 12, dev_seed, 32);
        crypto_eddsa_key_pair(sk, pk, dev_seed); /* wipes dev_seed */
        tfd_put_u32(entries + (size_t)i * TFD_ID_ENTRY_BYTES, ids[i]);
        memcpy(entries + (size_t)i * TFD_ID_ENTRY_BYTES + 4, pk, 32);
    }
    const size_t signed_len = TFD_ID_MANIFEST_HEAD_BYTES + (size_t)n * TFD_ID_ENTRY_BYTES;
    uint8_t h[32];
    tfd_identity_manifest_digest(h, man, signed_len);
    crypto_eddsa_sign(man + signed_len, fleet_sk, h, sizeof h);
    crypto_wipe(fleet_sk, sizeof fleet_sk);
    crypto_wipe(sk, sizeof sk);
    *len = need;
    return TFD_OK;
}
