/* tinyfed — the device's SecAgg+ client: one round of secure aggregation as
 * an explicit stage machine (DESIGN.md rule 8) over the primitives of
 * tfd/secagg.h.  Behaviour and byte layouts are those of the host reference
 * client (host/secagg/client.py, messages.py); the host server
 * (host/secagg/server.py) drives either.
 *
 *   IDLE --ADVERTISE_KEYS--> ADVERTISED --SHARE_KEYS--> SHARED
 *        --MASKED_INPUT--> MASKED --UNMASK--> DONE
 *
 * Every request starts with u32 round.  A request of another round, or in
 * another stage, is refused with TFD_ERR_PROTO_STATE and changes nothing
 * (replays, reordering); ADVERTISE_KEYS must carry a round strictly greater
 * than any before.  A request that is well formed but must not be answered
 * (ids outside the neighbourhood, fewer live neighbours than the threshold,
 * a tampered share, an UNMASK naming one client both dropped and surviving)
 * is refused with TFD_ERR_ARG / TFD_ERR_CRYPTO, and the round is abandoned:
 * every secret wiped, stage IDLE.
 *
 * Secrets and when they go (crypto_wipe):
 *   share secret key c_sk                            -> end of SHARE_KEYS, once
 *      the AEAD key with each live neighbour is derived (one X25519 each)
 *   those AEAD keys (open the shares addressed to us) -> UNMASK
 *   mask secret key s_sk and self-mask seed b        -> right after they are
 *      turned into the masking keys in MASKED_INPUT
 *   masking keys (self key, pairwise keys), encoder  -> UNMASK
 *   the sealed shares we hold                        -> UNMASK
 *   and all of it on any refusal and on tfd_sa_client_wipe.
 * Randomness comes from the random callback (a device passes tfd_port_random).
 *
 * No allocation: the neighbourhood is at most TFD_SA_CLIENT_MAX_NEIGHBOURS.
 * Masked input = encode(clip(x) w / W) || w + PRG(b) + sum sign PRG(s_uv)
 * (tfd/secagg.h), produced in chunks (tfd_sa_client_masked_read) so no
 * second vector buffer is needed; the update x must stay unchanged from
 * MASKED_INPUT to the last read.
 */
#ifndef TFD_SECAGG_CLIENT_H
#define TFD_SECAGG_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/secagg.h"
#include "tfd/status.h"

#ifndef TFD_SA_CLIENT_MAX_NEIGHBOURS
#define TFD_SA_CLIENT_MAX_NEIGHBOURS 16u
#endif
#define TFD_SA_SHARE_PLAIN_BYTES 64u /* b-share || s-share */
#define TFD_SA_SEALED_BYTES (TFD_SA_SHARE_PLAIN_BYTES + TFD_SA_MAC_BYTES)
#define TFD_SA_SHARE_KIND_B 0u
#define TFD_SA_SHARE_KIND_S 1u

/* reply sizes (bytes) */
#define TFD_SA_ADVERTISE_REPLY_BYTES 72u
#define TFD_SA_SHARE_KEYS_REPLY_BYTES(k) (10u + 108u * (k))
#define TFD_SA_UNMASK_REPLY_BYTES(k) (10u + 37u * (k))

#define TFD_SA_CLIENT_STAGE_LIST(X) \
    X(IDLE, 0)                      \
    X(ADVERTISED, 1)                \
    X(SHARED, 2)                    \
    X(MASKED, 3)                    \
    X(DONE, 4)

typedef enum {
#define TFD_SA_CLIENT_STAGE_ENUM_(name, value) TFD_SA_CLIENT_##name = (value),
    TFD_SA_CLIENT_STAGE_LIST(TFD_SA_CLIENT_STAGE_ENUM_)
#undef TFD_SA_CLIENT_STAGE_ENUM_
    TFD_SA_CLIENT_STAGE_COUNT
} tfd_sa_client_stage_t;

typedef tfd_status_t (*tfd_sa_random_fn)(uint8_t *out, size_t len);

typedef struct {
    uint32_t id;
    uint8_t share_pk[32];
    uint8_t mask_pk[32];
    uint8_t live;  /* its keys arrived in SHARE_KEYS */
    uint8_t held;  /* its sealed share for us arrived in MASKED_INPUT */
    uint8_t share_key[32]; /* AEAD key with it (X25519 of the share keys + KDF), from SHARE_KEYS */
    uint8_t nonce[TFD_SA_NONCE_BYTES];
    uint8_t sealed[TFD_SA_SEALED_BYTES];
} tfd_sa_neighbour_t;

typedef struct {
    /* configuration (kept across rounds) */
    uint32_t id;
    tfd_sa_encoding_t enc;
    tfd_sa_random_fn random;
    uint32_t round;
    uint8_t has_round;
    /* the round (wiped) */
    tfd_sa_client_stage_t stage;
    uint8_t threshold;
    uint8_t n_neighbours;
    tfd_sa_neighbour_t nb[TFD_SA_CLIENT_MAX_NEIGHBOURS];
    uint8_t share_sk[32], share_pk[32];
    uint8_t mask_sk[32], mask_pk[32];
    uint8_t seed[32];         /* b */
    uint8_t own_b_share[32];  /* our own holder share of b */
    uint8_t self_key[32];     /* KDF(b, SELF_MASK, round) */
    uint8_t pair_key[TFD_SA_CLIENT_MAX_NEIGHBOURS][32];
    uint8_t pair_negate[TFD_SA_CLIENT_MAX_NEIGHBOURS];
    uint8_t n_pairs;
    tfd_sa_encoder_t encoder;
    uint32_t n_words;         /* n + 1 */
} tfd_sa_client_t;

const char *tfd_sa_client_stage_name(tfd_sa_client_stage_t stage);

/* A client with id (1..2^32-1) and encoding; random must not be NULL. */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_init(tfd_sa_client_t *c, uint32_t id, const tfd_sa_encoding_t *enc,
                                                 tfd_sa_random_fn random);

/* Change id and encoding before a new round (wipes the current one; the
 * round history stays, so older rounds still cannot be replayed). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_configure(tfd_sa_client_t *c, uint32_t id,
                                                      const tfd_sa_encoding_t *enc);

/* Wipe every secret of the current round; stage IDLE (the round id stays:
 * no older round can be started again). */
void tfd_sa_client_wipe(tfd_sa_client_t *c);

/* ADVERTISE_KEYS: req -> out (TFD_SA_ADVERTISE_REPLY_BYTES). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_advertise(tfd_sa_client_t *c, const uint8_t *req, size_t len,
                                                      uint8_t *out, size_t cap, size_t *out_len);
/* SHARE_KEYS: req -> sealed shares (TFD_SA_SHARE_KEYS_REPLY_BYTES(live)). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_share_keys(tfd_sa_client_t *c, const uint8_t *req, size_t len,
                                                       uint8_t *out, size_t cap, size_t *out_len);
/* MASKED_INPUT: takes the sealed shares addressed to us and prepares the
 * masked input of update x[0..n) with weight w; *n_words = n + 1.  The reply
 * is u32 round || the words (tfd_sa_client_masked_read). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_masked_input(tfd_sa_client_t *c, const uint8_t *req, size_t len,
                                                         const float *x, uint32_t n, uint32_t weight,
                                                         uint32_t *n_words);
/* words[i] = masked word (offset + i), i < count (any order, repeatable). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_masked_read(const tfd_sa_client_t *c, uint32_t offset,
                                                        uint32_t *words, uint32_t count);
#if defined(TFD_TEST_MESSAGES) && TFD_TEST_MESSAGES
/* TEST IMAGES ONLY (compiled with TFD_TEST_MESSAGES=1, never in a release
 * image): words[i] = the encoded word (offset + i) BEFORE masking -- exactly
 * what tfd_sa_client_masked_read masks, same rounding randomness -- so a test
 * can check the secure sum against the plain sum bit for bit.  Stage MASKED
 * only (the encoder is wiped at UNMASK). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_encoded_read(const tfd_sa_client_t *c, uint32_t offset,
                                                         uint32_t *words, uint32_t count);
#endif
/* UNMASK: req -> our shares (TFD_SA_UNMASK_REPLY_BYTES(ids)); then DONE, wiped. */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_unmask(tfd_sa_client_t *c, const uint8_t *req, size_t len,
                                                   uint8_t *out, size_t cap, size_t *out_len);

#endif /* TFD_SECAGG_CLIENT_H */
