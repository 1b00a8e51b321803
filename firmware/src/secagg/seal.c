/* tinyfed — authenticated encryption of Shamir shares: XChaCha20-Poly1305
 * (Monocypher crypto_aead_lock/unlock) with (sender, receiver, round) as
 * associated data (tfd/secagg.h). */
#include <string.h>

#include "monocypher.h"
#include "sa_internal.h"
#include "tfd/secagg.h"

_Static_assert(sizeof TFD_SA_AD_PREFIX - 1 + 12 == TFD_SA_AD_BYTES, "share AD layout");

void tfd_sa_share_ad(uint8_t ad[TFD_SA_AD_BYTES], uint32_t sender, uint32_t receiver, uint32_t round)
{
    const size_t p = sizeof TFD_SA_AD_PREFIX - 1;
    memcpy(ad, TFD_SA_AD_PREFIX, p);
    tfd_sa_store32_le(ad + p, sender);
    tfd_sa_store32_le(ad + p + 4, receiver);
    tfd_sa_store32_le(ad + p + 8, round);
}

void tfd_sa_seal(uint8_t *cipher, uint8_t mac[16], const uint8_t key[32], const uint8_t nonce[24],
                 uint32_t sender, uint32_t receiver, uint32_t round, const uint8_t *plain, size_t len)
{
    uint8_t ad[TFD_SA_AD_BYTES];
    tfd_sa_share_ad(ad, sender, receiver, round);
    crypto_aead_lock(cipher, mac, key, nonce, ad, sizeof ad, plain, len);
}

tfd_status_t tfd_sa_open(uint8_t *plain, const uint8_t key[32], const uint8_t nonce[24], uint32_t sender,
                         uint32_t receiver, uint32_t round, const uint8_t *cipher, const uint8_t mac[16],
                         size_t len)
{
    TFD_ENSURE((plain != NULL && cipher != NULL) || len == 0, TFD_ERR_ARG);
    TFD_ENSURE(key != NULL && nonce != NULL && mac != NULL, TFD_ERR_ARG);
    uint8_t ad[TFD_SA_AD_BYTES];
    tfd_sa_share_ad(ad, sender, receiver, round);
    if (crypto_aead_unlock(plain, mac, key, nonce, ad, sizeof ad, cipher, len) != 0) {
        if (len > 0) crypto_wipe(plain, len);
        return TFD_ERR_CRYPTO;
    }
    return TFD_OK;
}
