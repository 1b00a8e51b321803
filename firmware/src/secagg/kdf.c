/* tinyfed — SecAgg key pairs, agreement and KDF (tfd/secagg.h). */
#include <string.h>

#include "monocypher.h"
#include "sa_internal.h"
#include "tfd/pk.h"
#include "tfd/secagg.h"

void tfd_sa_keypair(uint8_t secret_key[32], uint8_t public_key[32], const uint8_t random[32])
{
    if (secret_key != random) memcpy(secret_key, random, 32);
    tfd_pk_x25519_public_key(public_key, secret_key);
}

tfd_status_t tfd_sa_kdf(uint8_t out[32], const uint8_t key[32], const char *label, uint32_t round,
                        const uint8_t *ctx, size_t ctx_len)
{
    TFD_ENSURE(out != NULL && key != NULL && label != NULL, TFD_ERR_ARG);
    TFD_ENSURE(ctx != NULL || ctx_len == 0, TFD_ERR_ARG);
    const size_t label_len = strlen(label);
    TFD_ENSURE(label_len >= 1 && label_len <= 255, TFD_ERR_ARG);

    uint8_t head[sizeof TFD_SA_DOMAIN - 1 + 1];
    memcpy(head, TFD_SA_DOMAIN, sizeof TFD_SA_DOMAIN - 1);
    head[sizeof head - 1] = (uint8_t)label_len;
    uint8_t round_le[4];
    tfd_sa_store32_le(round_le, round);

    crypto_blake2b_ctx h;
    crypto_blake2b_keyed_init(&h, 32, key, 32); /* key is consumed here: out may alias it */
    crypto_blake2b_update(&h, head, sizeof head);
    crypto_blake2b_update(&h, (const uint8_t *)label, label_len);
    crypto_blake2b_update(&h, round_le, sizeof round_le);
    crypto_blake2b_update(&h, ctx, ctx_len);
    crypto_blake2b_final(&h, out); /* wipes h */
    return TFD_OK;
}

tfd_status_t tfd_sa_agree(uint8_t out[32], const uint8_t secret_key[32], const uint8_t own_public_key[32],
                          const uint8_t peer_public_key[32], const char *label, uint32_t round)
{
    TFD_ENSURE(out != NULL && secret_key != NULL && own_public_key != NULL && peer_public_key != NULL,
               TFD_ERR_ARG);
    static const uint8_t zero[32];
    if (crypto_verify32(own_public_key, peer_public_key) == 0) {
        crypto_wipe(out, 32);
        return TFD_ERR_CRYPTO; /* our own key sent back to us */
    }
    uint8_t raw[32];
    tfd_pk_x25519(raw, secret_key, peer_public_key);
    if (crypto_verify32(raw, zero) == 0) {
        crypto_wipe(raw, sizeof raw);
        crypto_wipe(out, 32);
        return TFD_ERR_CRYPTO; /* low-order peer key: no contribution from us */
    }
    /* Public keys are public: ordering them by memcmp leaks nothing. */
    const int own_first = memcmp(own_public_key, peer_public_key, 32) < 0;
    uint8_t ctx[64];
    memcpy(ctx, own_first ? own_public_key : peer_public_key, 32);
    memcpy(ctx + 32, own_first ? peer_public_key : own_public_key, 32);
    const tfd_status_t st = tfd_sa_kdf(out, raw, label, round, ctx, sizeof ctx);
    crypto_wipe(raw, sizeof raw);
    if (st != TFD_OK) crypto_wipe(out, 32);
    return st;
}

int tfd_sa_equal32(const uint8_t a[32], const uint8_t b[32])
{
    return crypto_verify32(a, b) == 0;
}
