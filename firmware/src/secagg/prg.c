/* tinyfed — SecAgg PRG (ChaCha20-IETF keystream as uint32 words) and masks (tfd/secagg.h). */
#include <string.h>

#include "monocypher.h"
#include "sa_internal.h"
#include "tfd/secagg.h"

/* tfd_sa_prg_add (the ChaCha20 keystream itself): firmware/src/crypto/keystream.c on a device,
 * firmware/native/keystream_host.c in the host builds that run many virtual devices. */

void tfd_sa_prg(uint32_t *out, size_t n, const uint8_t key[32], uint32_t word_offset)
{
    if (n == 0) return;
    memset(out, 0, n * sizeof *out);
    tfd_sa_prg_add(out, n, key, word_offset, 0);
}

int tfd_sa_pair_sign(uint32_t self_id, uint32_t peer_id)
{
    return self_id < peer_id ? 1 : self_id > peer_id ? -1 : 0;
}

tfd_status_t tfd_sa_add_self_mask(uint32_t *acc, size_t n, uint32_t word_offset, const uint8_t self_seed[32],
                                  uint32_t round)
{
    TFD_ENSURE((acc != NULL || n == 0) && self_seed != NULL, TFD_ERR_ARG);
    uint8_t key[32];
    TFD_TRY(tfd_sa_kdf(key, self_seed, TFD_SA_LABEL_SELF_MASK, round, NULL, 0));
    tfd_sa_prg_add(acc, n, key, word_offset, 0);
    crypto_wipe(key, sizeof key);
    return TFD_OK;
}

tfd_status_t tfd_sa_add_pair_masks(uint32_t *acc, size_t n, uint32_t word_offset, uint32_t self_id,
                                   const uint8_t mask_sk[32], const uint8_t mask_pk[32],
                                   const tfd_sa_peer_t *peers, size_t n_peers, uint32_t round)
{
    TFD_ENSURE((acc != NULL || n == 0) && mask_sk != NULL && mask_pk != NULL, TFD_ERR_ARG);
    TFD_ENSURE(peers != NULL || n_peers == 0, TFD_ERR_ARG);
    for (size_t p = 0; p < n_peers; ++p) TFD_ENSURE(peers[p].id != self_id, TFD_ERR_ARG);
    uint8_t key[32];
    for (size_t p = 0; p < n_peers; ++p) {
        const tfd_status_t st =
            tfd_sa_agree(key, mask_sk, mask_pk, peers[p].public_key, TFD_SA_LABEL_PAIR_MASK, round);
        if (st != TFD_OK) return st; /* tfd_sa_agree wiped key; acc is partial: discard it */
        tfd_sa_prg_add(acc, n, key, word_offset, tfd_sa_pair_sign(self_id, peers[p].id) < 0);
    }
    crypto_wipe(key, sizeof key);
    return TFD_OK;
}
