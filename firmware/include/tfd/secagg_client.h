/* tinyfed — the device's SecAgg+ client: one round of secure aggregation as
 * an explicit stage machine (ARCHITECTURE.md rule 8) over the primitives of
 * tfd/secagg.h, secure against a host that deviates from the protocol (Bonawitz
 * et al. 2017, section 6 "malicious server", with the neighbourhoods of Bell et
 * al. 2020).  Behaviour and byte layouts are those of the host reference client
 * (host/secagg/client.py, messages.py); the host server (host/secagg/server.py)
 * drives either.
 *
 *   IDLE --ADVERTISE_KEYS--> ADVERTISED --SHARE_KEYS--> SHARED
 *        --MASKED_INPUT--> MASKED --SURVIVORS--> CHECKED --UNMASK--> DONE
 *
 * Identity.  The client signs with its device key (tfd/identity.h) and
 * verifies every other device against the fleet manifest pinned in its image:
 *   ADVERTISE_KEYS  it signs H_adv = H("tinyfed/v1/sa-adv" || fleet_id || round
 *                   || id || t || k || dp_z_milli || its k neighbour ids || share_pk
 *                   || mask_pk) (H = BLAKE2b-256, integers little endian: u32 round,
 *                   id, dp_z_milli, ids; u16 t, k); it refuses a dp_z_milli (the
 *                   distributed-DP noise, tfd/secagg_dp.h) below the manifest's floor;
 *   SHARE_KEYS      it accepts a neighbour's keys only with that neighbour's
 *                   signature over the same round, t and DP noise, and a neighbourhood
 *                   that contains this device (the graph is symmetric) and
 *                   passes the policy: the host can neither substitute keys nor
 *                   replay another round's;
 *   SURVIVORS       it signs the survivor set U3 (bitmap over the manifest):
 *                   H_surv = H("tinyfed/v1/sa-survivors" || fleet_id || round ||
 *                   u16 bitmap bytes || bitmap), after checking it against what it
 *                   saw (itself in it; a neighbour in it must have sent it a share);
 *   UNMASK          it reveals shares only if, for each secret it is to reveal a
 *                   share of (its own b, each neighbour's b or s), at least t of
 *                   that secret's holders (the owner and its neighbours, as the
 *                   owner signed them) signed the SAME survivor set; which kind
 *                   of share (b if the owner is in the set, s if not) follows
 *                   from the set it signed, not from the host.  Honest devices
 *                   sign one set per round and 2t > k + 1, so two different sets
 *                   can never both gather t holders' signatures: every holder
 *                   that reveals anything agrees on who survived.
 *
 * Request and reply bodies are the TFD_BODY tables of tfd/wire.def, decoded
 * and encoded through the table (tfd_wire_body_decode, records by index).
 * Every request is checked in this order, the same in the host reference
 * client (host/secagg/client.py):
 *   1. it decodes (exact length for its counts, counts <= MAX):
 *      else TFD_ERR_MSG_LENGTH, nothing changes;
 *   2. it is for the current round and stage (ADVERTISE_KEYS: a round after
 *      the last one): else TFD_ERR_PROTO_STATE, nothing changes (replays,
 *      reordering);
 *   3. its content may be answered (ids outside the neighbourhood or the
 *      manifest, a bad signature, a tampered share, an inconsistent survivor
 *      set, too few holders' signatures ...): else TFD_ERR_ARG / CRYPTO /
 *      POLICY and the round is abandoned: every secret wiped, stage IDLE.  A
 *      refused ADVERTISE_KEYS leaves the round in progress as it was.
 *
 * Secrets and when they go (crypto_wipe):
 *   share secret key c_sk                            -> end of SHARE_KEYS, once
 *      the AEAD key with each live neighbour is derived (one X25519 each)
 *   those AEAD keys (open the shares addressed to us) -> UNMASK
 *   mask secret key s_sk and self-mask seed b        -> right after they are
 *      turned into the masking keys in MASKED_INPUT
 *   masking keys (self key, pairwise keys), the encoded
 *   update (in the caller's buffer, see MASKED_INPUT)  -> UNMASK
 *   the sealed shares we hold                        -> UNMASK
 *   and all of it on any refusal and on tfd_sa_client_wipe.
 * The device signing key is not the client's: it lives in tfd_identity_t.
 * Randomness comes from the random callback (a device passes tfd_port_random).
 *
 * No allocation: the neighbourhood is at most TFD_SA_CLIENT_MAX_NEIGHBOURS.
 * Masked input = encode(clip(x) w / W) || summed + PRG(b) + sum sign PRG(s_uv)
 * (tfd/secagg.h): the encoding is computed once, in place of the update, at
 * MASKED_INPUT; the masks are added in chunks as the vector is read
 * (tfd_sa_client_masked_read), so no second vector buffer is needed.
 *
 * Policy (refused with TFD_ERR_POLICY, see firmware/docs/SECURITY.md): a
 * device with a usable identity only; the neighbourhood has at least
 * max(SA_MIN_NEIGHBOURS, the manifest's min_neighbours) members, and so has
 * every neighbour's; the threshold is a strict majority of the holders of a
 * secret (2t > k + 1, so two disjoint sets of holders can never both reach t);
 * rounds move forward in serial-number order (RFC 1982: a round r is newer
 * than the last one l iff 0 < r - l < 2^31 mod 2^32), so no round id blocks
 * secure aggregation.
 */
#ifndef TFD_SECAGG_CLIENT_H
#define TFD_SECAGG_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/identity.h"
#include "tfd/secagg.h"
#include "tfd/status.h"

/* The largest neighbourhood: a wire-table constant (the host reads it there). */
#define TFD_SA_CLIENT_MAX_NEIGHBOURS ((unsigned)TFD_WIRE_SA_MAX_NEIGHBOURS)
#define TFD_SA_SHARE_PLAIN_BYTES (2u * TFD_WIRE_SA_SHARE_LEN) /* b-share || s-share */
#define TFD_SA_SEALED_BYTES (TFD_SA_SHARE_PLAIN_BYTES + TFD_SA_MAC_BYTES)
#define TFD_SA_SHARE_KIND_B ((uint8_t)TFD_WIRE_SA_KIND_B)
#define TFD_SA_SHARE_KIND_S ((uint8_t)TFD_WIRE_SA_KIND_S)
#define TFD_SA_DOMAIN_ADV "tinyfed/v1/sa-adv"
#define TFD_SA_DOMAIN_SURVIVORS "tinyfed/v1/sa-survivors"

/* reply sizes (bytes), from the wire table */
#define TFD_SA_ADVERTISE_REPLY_BYTES ((size_t)TFD_WIRE_FIXED_SA_ADVERTISE_REPLY)
#define TFD_SA_SHARE_KEYS_REPLY_BYTES(k) \
    ((size_t)TFD_WIRE_FIXED_SA_SHARE_KEYS_REPLY + (size_t)(k) * (size_t)TFD_WIRE_FIXED_SA_SEALED_OUT)
#define TFD_SA_SURVIVORS_REPLY_BYTES ((size_t)TFD_WIRE_FIXED_SA_SURVIVORS_REPLY)
#define TFD_SA_UNMASK_REPLY_BYTES(k) \
    ((size_t)TFD_WIRE_FIXED_SA_UNMASK_REPLY + (size_t)(k) * (size_t)TFD_WIRE_FIXED_SA_SHARE)

_Static_assert(TFD_WIRE_SA_MAX_HOLDERS == TFD_WIRE_SA_MAX_NEIGHBOURS + 1, "SA_MAX_HOLDERS = SA_MAX_NEIGHBOURS + 1");
_Static_assert(TFD_WIRE_SA_SEALED_LEN == TFD_SA_SEALED_BYTES, "SA_SEALED_LEN = 2 shares + MAC");
_Static_assert(TFD_WIRE_SA_KEY_LEN == TFD_SA_KEY_BYTES && TFD_WIRE_SA_NONCE_LEN == TFD_SA_NONCE_BYTES &&
                   TFD_WIRE_SA_SHARE_LEN == TFD_SA_SECRET_BYTES,
               "wire table sizes = primitive sizes");
_Static_assert(TFD_WIRE_SA_SIG_LEN == TFD_ID_SIG_BYTES && TFD_WIRE_ID_PK_LEN == TFD_ID_PK_BYTES &&
                   TFD_WIRE_ID_FLEET_LEN == TFD_ID_FLEET_BYTES,
               "wire table sizes = identity sizes");
_Static_assert(TFD_WIRE_SA_BITMAP_MAX * 8 >= TFD_ID_MAX_DEVICES, "a survivor bitmap covers every manifest device");
_Static_assert(TFD_WIRE_SA_MAX_SIGNERS >= 2 * TFD_WIRE_SA_MAX_NEIGHBOURS + 1, "room for a ring neighbourhood's signers");

#define TFD_SA_CLIENT_STAGE_LIST(X) \
    X(IDLE, 0)                      \
    X(ADVERTISED, 1)                \
    X(SHARED, 2)                    \
    X(MASKED, 3)                    \
    X(CHECKED, 4)                   \
    X(DONE, 5)

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
    uint8_t live;     /* its signed keys arrived in SHARE_KEYS */
    uint8_t held;     /* its sealed share for us arrived in MASKED_INPUT */
    uint8_t survived; /* CHECKED: in the survivor set we signed */
    uint8_t n_nb;     /* its neighbourhood N(v), as it signed it */
    uint32_t nb[TFD_SA_CLIENT_MAX_NEIGHBOURS];
    uint16_t nb_in;   /* CHECKED: bit q = nb[q] is in the survivor set we signed */
    uint8_t share_key[32]; /* AEAD key with it (X25519 of the share keys + KDF), from SHARE_KEYS */
    uint8_t nonce[TFD_SA_NONCE_BYTES];
    uint8_t sealed[TFD_SA_SEALED_BYTES];
} tfd_sa_neighbour_t;

typedef struct {
    /* configuration (kept across rounds) */
    const tfd_identity_t *ident; /* this device's key and the fleet manifest */
    uint32_t id;                 /* ident->device_id */
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
    uint8_t *vec;             /* MASKED: the n encoded update words, in place of the update (caller's buffer) */
    uint32_t n_params;        /* n */
    tfd_sa_summed_t summed;   /* words n.. */
    uint32_t n_words;         /* TFD_SA_WORDS(n) */
    uint8_t view[32];         /* CHECKED: H_surv of the survivor set we signed (the set itself is not
                                 kept: only who of the holders we count was in it, nb[].survived / nb_in) */
} tfd_sa_client_t;
_Static_assert(TFD_SA_CLIENT_MAX_NEIGHBOURS <= 16, "tfd_sa_neighbour_t.nb_in has one bit per neighbour's neighbour");

const char *tfd_sa_client_stage_name(tfd_sa_client_stage_t stage);

/* A client for this device's identity (ident->ok, else TFD_ERR_POLICY: no
 * secure aggregation without identity) and encoding; random must not be NULL.
 * The identity must outlive the client. */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_init(tfd_sa_client_t *c, const tfd_identity_t *ident,
                                                 const tfd_sa_encoding_t *enc, tfd_sa_random_fn random);

/* Wipe every secret of the current round; stage IDLE (the round id stays:
 * no older round can be started again). */
void tfd_sa_client_wipe(tfd_sa_client_t *c);

/* ADVERTISE_KEYS: req -> out (TFD_SA_ADVERTISE_REPLY_BYTES). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_advertise(tfd_sa_client_t *c, const uint8_t *req, size_t len,
                                                      uint8_t *out, size_t cap, size_t *out_len);
/* ADVERTISE_KEYS that also sets the encoding, only once the whole request has
 * been checked: a refused request changes nothing, not even the round in
 * progress. */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_advertise_as(tfd_sa_client_t *c, const tfd_sa_encoding_t *enc,
                                                         const uint8_t *req, size_t len, uint8_t *out, size_t cap,
                                                         size_t *out_len);
/* The round of request body `req` of stage message `msg_id` (TFD_MSG_*), once
 * the body decodes (TFD_ERR_MSG_LENGTH otherwise). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_request_round(uint8_t msg_id, const uint8_t *req, size_t len, uint32_t *round);
/* SHARE_KEYS: req -> sealed shares (TFD_SA_SHARE_KEYS_REPLY_BYTES(live)). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_share_keys(tfd_sa_client_t *c, const uint8_t *req, size_t len,
                                                       uint8_t *out, size_t cap, size_t *out_len);
/* MASKED_INPUT: takes the sealed shares addressed to us and encodes update
 * x[0..n) ONCE, in place: x is replaced by its n encoded words (clip, weight,
 * stochastic rounding: tfd/secagg.h), so reading the masked vector later does
 * no value-dependent work and the plain update is gone from the buffer.  The
 * buffer belongs to the client until the round ends (UNMASK, a refusal,
 * tfd_sa_client_wipe), which wipes it.  summed->weight = w; *n_words =
 * TFD_SA_WORDS(n).  The reply is body SA_MASKED_INPUT_REPLY: u32 round || the
 * words (tfd_sa_client_masked_read). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_masked_input(tfd_sa_client_t *c, const uint8_t *req, size_t len,
                                                         float *x, uint32_t n, const tfd_sa_summed_t *summed,
                                                         uint32_t *n_words);
/* words[i] = masked word (offset + i), i < count (any order, repeatable). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_masked_read(const tfd_sa_client_t *c, uint32_t offset,
                                                        uint32_t *words, uint32_t count);
#if defined(TFD_TEST_MESSAGES) && TFD_TEST_MESSAGES
/* TEST IMAGES ONLY (compiled with TFD_TEST_MESSAGES=1, never in a release
 * image): words[i] = the encoded word (offset + i) BEFORE masking -- exactly
 * what tfd_sa_client_masked_read masks, same rounding randomness -- so a test
 * can check the secure sum against the plain sum bit for bit.  Stage MASKED
 * or CHECKED (the encoded update is wiped at UNMASK). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_encoded_read(const tfd_sa_client_t *c, uint32_t offset,
                                                         uint32_t *words, uint32_t count);
#endif
/* SURVIVORS: the survivor set -> our signature of it (TFD_SA_SURVIVORS_REPLY_BYTES). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_survivors(tfd_sa_client_t *c, const uint8_t *req, size_t len,
                                                      uint8_t *out, size_t cap, size_t *out_len);
/* UNMASK: the others' signatures of the set -> our shares
 * (TFD_SA_UNMASK_REPLY_BYTES(1 + neighbours held)); then DONE, wiped. */
TFD_CHECK_RESULT tfd_status_t tfd_sa_client_unmask(tfd_sa_client_t *c, const uint8_t *req, size_t len,
                                                   uint8_t *out, size_t cap, size_t *out_len);

#endif /* TFD_SECAGG_CLIENT_H */
