/* tinyfed — secure-aggregation primitives (the crypto layer under the SecAgg+
 * client; Bonawitz et al. 2017, Bell et al. 2020).
 *
 * Every function here is pure: randomness comes in as bytes from the caller
 * (on a device: tfd_port_random), so each result is reproducible and the host
 * reference (host/secagg/primitives.py, shamir.py, encoding.py) produces the
 * same bytes -- tests/test_secagg_vectors.py holds the two together.  Crypto
 * is Monocypher 4.0.3 (X25519, ChaCha20, XChaCha20-Poly1305, BLAKE2b); the
 * only arithmetic written here is GF(2^8) for Shamir and the fixed-point
 * encoding.  Secrets on the stack are wiped (crypto_wipe) on every path.
 *
 * Byte order: every integer that enters a hash, a nonce or associated data
 * is little-endian; mask words are uint32 read little-endian from the
 * ChaCha20 keystream.  "||" is concatenation.
 *
 * KDF  tfd_sa_kdf(key, label, round, ctx) =
 *        BLAKE2b-256(key = key[32],
 *                    msg = "tinyfed/v1/" || u8 len(label) || label || u32 round || ctx)
 *      (keyed BLAKE2b, RFC 7693; no salt/personalisation: Monocypher has
 *      none, the domain separation is in the message).
 * Agreement  tfd_sa_agree(sk, own_pk, peer_pk, label, round) =
 *        KDF(X25519(sk, peer_pk), label, round, min(own_pk, peer_pk) || max(...))
 *      min/max = lexicographic byte order, so both ends derive one key.  An
 *      all-zero X25519 output (a low-order peer key) and peer_pk == own_pk
 *      are refused (TFD_ERR_CRYPTO).  Labels used by SecAgg:
 *      TFD_SA_LABEL_PAIR_MASK (mask keys s_uv), TFD_SA_LABEL_SHARE_KEY (keys
 *      c_uv that encrypt shares), and, with the KDF alone,
 *      TFD_SA_LABEL_SELF_MASK (self mask from seed b_u, ctx empty) and
 *      TFD_SA_LABEL_ROUNDING (stochastic-rounding stream, ctx empty).
 * PRG  word i of PRG(key) = uint32 LE bytes [4i, 4i+4) of the ChaCha20-IETF
 *      keystream (RFC 8439: 96-bit nonce = 12 zero bytes, block counter from
 *      0).  Every PRG key is single-use (a KDF output bound to its round).
 * Masked input (n+1 words, all arithmetic mod 2^32) for client u:
 *        y_u = encode(x_u) || w_u                       (encoding below)
 *            + PRG(KDF(b_u, SELF_MASK, round, ""))
 *            + sum over neighbours v of sign(u,v) * PRG(agree(s_u, ..., PAIR_MASK))
 *      sign(u,v) = +1 if u < v, -1 if u > v (client ids; u == v refused).
 *      In the server's sum the pairwise terms cancel, self masks are removed
 *      with the reconstructed b_u, and a dropped v's pairwise terms are
 *      recomputed from its reconstructed mask secret key.
 * Shamir  over GF(2^8) (AES polynomial x^8+x^4+x^3+x+1), byte-wise: byte j
 *      of the secret is P_j(0), P_j(x) = secret[j] + sum_{c=1}^{t-1} a_{c,j} x^c
 *      with a_{c,j} = rand[32(c-1) + j]; holder h (1..k) gets y_h[j] = P_j(h).
 *      Reconstruction: Lagrange at 0 from any >= t shares with distinct
 *      nonzero x.  Multiplication is bit-serial with masks (no tables
 *      indexed by secrets, no secret-dependent branches).  Shamir does not
 *      detect a wrong share: shares travel inside the AEAD below.
 * AEAD  XChaCha20-Poly1305 (Monocypher crypto_aead_lock =
 *      draft-irtf-cfrg-xchacha AEAD_XChaCha20_Poly1305), nonce[24] from the
 *      caller's RNG, associated data (28 bytes) =
 *        "tinyfed/v1/share" || u32 sender || u32 receiver || u32 round.
 *      Sealed message = ciphertext || mac[16]; a wrong key, nonce, AD (other
 *      sender/receiver/round) or any flipped bit is refused with
 *      TFD_ERR_CRYPTO and the output is wiped.
 * Encoding (b = 32 bits, f fractional bits, clip C > 0, weight w <= W):
 *      s   = sum_i (double)x_i^2           (sequential, in double)
 *      g   = (sqrt(s) <= C ? 1 : C / sqrt(s)) * ((double)w / W)
 *      v_i = (double)x_i * (g * 2^f)
 *      q_i = floor((floor(v_i 2^32) + r_i) / 2^32)  (exact integer arithmetic;
 *            = floor(v_i + r_i 2^-32)), r_i = word i of
 *            PRG(KDF(noise_key, ROUNDING, round, ""))   (stochastic rounding:
 *            E[q_i] = v_i up to 2^-32), clamped to [-B, B], B = floor(C 2^f) + 1
 *            (an encoding needs B <= 2^31 - 1, so |v_i| < 2^31)
 *      word_i = q_i mod 2^32 (two's complement); words n, n+1, ... are the
 *      TFD_SUMMED scalars of wire.def in order (tfd_sa_summed_t; the first,
 *      `weight`, is w).
 *      Bound: n_max * B <= 2^31 - 1 and n_max * W <= 2^32 - 1, so the sum of
 *      n_max encodings cannot wrap (tfd_sa_check_encoding); the server reads
 *      the sum as int32 / 2^f = sum_u g_u x_u, and the FedAvg mean is
 *      W * that / sum_u w_u (== the weighted mean when nothing was clipped).
 *      The float work (s, g, v_i) is IEEE double, one rounding per
 *      operation, no contraction (switched off in encode.c), so numpy
 *      float64 reproduces it bit for bit; the rounding is int64 arithmetic.
 */
#ifndef TFD_SECAGG_H
#define TFD_SECAGG_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/status.h"
#include "tfd/wire.h" /* tfd_sa_summed_t: the scalars summed with the update (TFD_SUMMED) */

#define TFD_SA_KEY_BYTES 32u     /* X25519 keys, KDF outputs, seeds */
#define TFD_SA_NONCE_BYTES 24u   /* XChaCha20 nonce */
#define TFD_SA_MAC_BYTES 16u     /* Poly1305 tag */
#define TFD_SA_SECRET_BYTES 32u  /* a Shamir-shared secret (seed b_u or key s_u) */
#define TFD_SA_MAX_HOLDERS 255u  /* GF(2^8): x = 1..255 */
#define TFD_SA_AD_BYTES 28u      /* associated data of a sealed share */
#define TFD_SA_MAX_FRAC_BITS 30u

#define TFD_SA_DOMAIN "tinyfed/v1/"
#define TFD_SA_LABEL_PAIR_MASK "pair-mask"
#define TFD_SA_LABEL_SHARE_KEY "share-key"
#define TFD_SA_LABEL_SELF_MASK "self-mask"
#define TFD_SA_LABEL_ROUNDING "stoch-round"
#define TFD_SA_LABEL_DP_NOISE "dp-noise"
#define TFD_SA_AD_PREFIX "tinyfed/v1/share"

/* ---- keys and key derivation -------------------------------------------- */

/* X25519 key pair from 32 random bytes (the secret key IS those bytes;
 * X25519 clamps it when used). */
void tfd_sa_keypair(uint8_t secret_key[32], uint8_t public_key[32], const uint8_t random[32]);

/* KDF (see the top of this file).  label: NUL-terminated, 1..255 bytes;
 * ctx may be NULL when ctx_len == 0.  out may alias key. */
TFD_CHECK_RESULT tfd_status_t tfd_sa_kdf(uint8_t out[32], const uint8_t key[32], const char *label,
                                         uint32_t round, const uint8_t *ctx, size_t ctx_len);

/* X25519 agreement + KDF bound to both public keys (see the top of this file). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_agree(uint8_t out[32], const uint8_t secret_key[32],
                                           const uint8_t own_public_key[32],
                                           const uint8_t peer_public_key[32], const char *label,
                                           uint32_t round);

/* Constant-time equality of 32 bytes (Monocypher crypto_verify32): 1 if equal. */
int tfd_sa_equal32(const uint8_t a[32], const uint8_t b[32]);

/* ---- PRG and masks -------------------------------------------------------- */

/* out[i] = word (word_offset + i) of PRG(key), i < n. */
void tfd_sa_prg(uint32_t *out, size_t n, const uint8_t key[32], uint32_t word_offset);

/* acc[i] += (or -= if negate) word (word_offset + i) of PRG(key), mod 2^32.
 * Streams in 64-byte blocks: no buffer beyond one block on the stack. */
void tfd_sa_prg_add(uint32_t *acc, size_t n, const uint8_t key[32], uint32_t word_offset, int negate);

/* +1 if self_id < peer_id, -1 if self_id > peer_id, 0 if equal (invalid). */
int tfd_sa_pair_sign(uint32_t self_id, uint32_t peer_id);

/* One neighbour as seen by a client: its id and its mask public key. */
typedef struct {
    uint32_t id;
    uint8_t public_key[32];
} tfd_sa_peer_t;

/* acc += PRG(KDF(self_seed, SELF_MASK, round, "")) over words
 * [word_offset, word_offset + n). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_add_self_mask(uint32_t *acc, size_t n, uint32_t word_offset,
                                                   const uint8_t self_seed[32], uint32_t round);

/* acc += sum over peers of sign(self_id, id) * PRG(agree(mask_sk, mask_pk,
 * peer.public_key, PAIR_MASK, round)) over words [word_offset, word_offset+n).
 * One X25519 per peer per call: a caller that masks in chunks derives the
 * keys once with tfd_sa_agree and calls tfd_sa_prg_add per chunk. */
TFD_CHECK_RESULT tfd_status_t tfd_sa_add_pair_masks(uint32_t *acc, size_t n, uint32_t word_offset,
                                                    uint32_t self_id, const uint8_t mask_sk[32],
                                                    const uint8_t mask_pk[32],
                                                    const tfd_sa_peer_t *peers, size_t n_peers,
                                                    uint32_t round);

/* ---- Shamir secret sharing over GF(2^8) ------------------------------------ */

/* shares[h-1] = the share of holder x = h, h = 1..k; rand holds 32*(t-1)
 * bytes (the polynomial coefficients, see the top of this file).
 * 1 <= t <= k <= TFD_SA_MAX_HOLDERS. */
TFD_CHECK_RESULT tfd_status_t tfd_sa_shamir_split(uint8_t (*shares)[32], const uint8_t secret[32],
                                                  unsigned t, unsigned k, const uint8_t *rand,
                                                  size_t rand_len);

/* secret = P(0) from m shares (xs[i] distinct, nonzero); m must be >= the
 * threshold used to split (not checkable here: fewer give a wrong value). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_shamir_combine(uint8_t secret[32], const uint8_t *xs,
                                                    const uint8_t (*shares)[32], unsigned m);

/* ---- authenticated encryption of shares ------------------------------------ */

/* The 28 bytes of associated data binding sender, receiver and round. */
void tfd_sa_share_ad(uint8_t ad[TFD_SA_AD_BYTES], uint32_t sender, uint32_t receiver, uint32_t round);

/* cipher[len] || mac = XChaCha20-Poly1305(key, nonce, AD(sender, receiver, round), plain[len]). */
void tfd_sa_seal(uint8_t *cipher, uint8_t mac[16], const uint8_t key[32], const uint8_t nonce[24],
                 uint32_t sender, uint32_t receiver, uint32_t round, const uint8_t *plain, size_t len);

/* Inverse of tfd_sa_seal; TFD_ERR_CRYPTO (plain wiped) unless authentic. */
TFD_CHECK_RESULT tfd_status_t tfd_sa_open(uint8_t *plain, const uint8_t key[32], const uint8_t nonce[24],
                                          uint32_t sender, uint32_t receiver, uint32_t round,
                                          const uint8_t *cipher, const uint8_t mac[16], size_t len);

/* ---- update encoding --------------------------------------------------------- */

typedef struct {
    float clip;           /* C: L2 bound of an update (> 0, finite) */
    uint8_t frac_bits;    /* f: fixed-point fraction bits (<= TFD_SA_MAX_FRAC_BITS) */
    uint32_t weight_max;  /* W: largest sample count a client may report (>= 1) */
    uint32_t dp_z_milli;  /* distributed DP: noise multiplier z x 1000 the sum of the
                             fewest survivors carries (tfd/secagg_dp.h); 0: no device noise */
} tfd_sa_encoding_t;

/* TFD_OK iff summing n_max encodings cannot wrap (see the top of this file);
 * TFD_ERR_OVERFLOW if it could, TFD_ERR_ARG for invalid parameters. */
TFD_CHECK_RESULT tfd_status_t tfd_sa_check_encoding(uint32_t n_max, const tfd_sa_encoding_t *enc);

/* The largest f <= TFD_SA_MAX_FRAC_BITS with n_max * (floor(C 2^f) + 1) <= 2^31 - 1. */
TFD_CHECK_RESULT tfd_status_t tfd_sa_choose_fraction_bits(uint8_t *frac_bits, uint32_t n_max, float clip);

/* Encoder state for one update (lets a caller encode in chunks).  x must
 * stay unchanged between tfd_sa_encoder_init and the last chunk. */
typedef struct {
    const float *x;         /* the update, n floats */
    double scale;           /* g * 2^f */
    int64_t bound;          /* B */
    uint32_t n;             /* parameters */
    tfd_sa_summed_t summed; /* words n.. (summed.weight = w) */
    uint8_t noise_key[32];
} tfd_sa_encoder_t;

/* Words of an encoding of n parameters: n + TFD_SA_SUMMED_COUNT. */
#define TFD_SA_WORDS(n) ((uint32_t)(n) + (uint32_t)TFD_SA_SUMMED_COUNT)

/* Norm, clip and weight factor of x[0..n) and the rounding stream key.
 * TFD_ERR_ARG: non-finite x, invalid enc, summed->weight 0 or > W,
 * n + TFD_SA_SUMMED_COUNT > UINT32_MAX;
 * TFD_ERR_OVERFLOW: B > 2^31 - 1 (not even one update fits). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_encoder_init(tfd_sa_encoder_t *e, const float *x, uint32_t n,
                                                  const tfd_sa_encoding_t *enc, const tfd_sa_summed_t *summed,
                                                  const uint8_t noise_key[32], uint32_t round);

/* words[i] = word (offset + i) of the TFD_SA_WORDS(n) encoded words (words
 * n.. are the summed scalars), i < len, offset + len <= TFD_SA_WORDS(n).
 * words may be x + offset itself (in-place encoding of the update). */
TFD_CHECK_RESULT tfd_status_t tfd_sa_encode_chunk(const tfd_sa_encoder_t *e, uint32_t *words,
                                                  uint32_t offset, uint32_t len);

/* Wipe the encoder's key. */
void tfd_sa_encoder_wipe(tfd_sa_encoder_t *e);

/* words[0..TFD_SA_WORDS(n)) = encode(x) || summed scalars, in one call. */
TFD_CHECK_RESULT tfd_status_t tfd_sa_encode(uint32_t *words, const float *x, uint32_t n,
                                            const tfd_sa_encoding_t *enc, const tfd_sa_summed_t *summed,
                                            const uint8_t noise_key[32], uint32_t round);

#endif /* TFD_SECAGG_H */
