/* tinyfed — device identity: an EdDSA signing key pair provisioned at flash time
 * and the fleet manifest (every device's id and public key, signed with the
 * user's fleet key), pinned in the image and verified on the device.
 *
 * EdDSA is Monocypher 4's crypto_eddsa_* (the Ed25519 curve and equation with
 * BLAKE2b-512 as the hash): a 32-byte seed is the device's secret, its public
 * key is 32 bytes, a signature 64.  Every statement a device signs is first
 * hashed: H = BLAKE2b-256(domain || fields), domains "tinyfed/v1/..." (below and
 * in tfd/secagg_client.h), and the signature is over the 32 bytes of H.
 *
 * The provisioning record (little endian; made by the toolchain,
 * tinyfed_toolchain.image.provision; for a board it is linked in as the data
 * table tfd_identity_blob, for a native device read from a file):
 *
 *   offset  0  u32 magic           TFD_ID_MAGIC ("TFID")
 *           4  u16 version         TFD_ID_VERSION
 *           6  u16 reserved        0
 *           8  u32 device_id       this device's id in the manifest (its SecAgg+ client id)
 *          12  u8  seed[32]        the device's EdDSA secret seed (never leaves the device)
 *          44  u8  fleet_pk[32]    the user's fleet public key: the trust anchor
 *          76  manifest:
 *              u8  fleet_id[16]    names the fleet (bound into every signed statement)
 *              u32 version         manifest version
 *              u16 n               devices (1..TFD_ID_MAX_DEVICES)
 *              u16 min_neighbours  fleet policy: smallest SecAgg+ neighbourhood (>= SA_MIN_NEIGHBOURS)
 *              u32 dp_min_z_milli  fleet policy: smallest noise multiplier x 1000 a device accepts for
 *                                  distributed DP (0: no minimum)
 *              u16 weight_floor    fleet policy: smallest public weight per sample trained on, in
 *                                  1/SA_WEIGHT_ONE sample (0..SA_WEIGHT_ONE; 0: none): a device refuses
 *                                  (POLICY, MASKED_INPUT) a weight below weight_floor x its samples
 *              u16 reserved        0
 *              n x { u32 id, u8 pk[32] }   strictly increasing nonzero ids
 *              u8  signature[64]   EdDSA(fleet key, H("tinyfed/v1/manifest" || manifest bytes before it))
 *
 * tfd_identity_init checks the whole record (exact length, order, the fleet
 * signature, that the seed's public key is this device's entry) before anything
 * is used; a record that fails leaves the device without identity, and secure
 * aggregation is then refused (TFD_ERR_POLICY).
 */
#ifndef TFD_IDENTITY_H
#define TFD_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/status.h"

#define TFD_ID_MAGIC 0x44494654u /* "TFID" little endian */
#define TFD_ID_VERSION 2u /* 2: the manifest's weight floor */
#define TFD_ID_HEADER_BYTES 76u
#define TFD_ID_MANIFEST_HEAD_BYTES 32u
#define TFD_ID_ENTRY_BYTES 36u
#define TFD_ID_SIG_BYTES 64u
#define TFD_ID_PK_BYTES 32u
#define TFD_ID_FLEET_BYTES 16u
#ifndef TFD_ID_MAX_DEVICES
#define TFD_ID_MAX_DEVICES 16384u /* the survivor bitmap of a SecAgg+ round has one bit per device */
#endif
#define TFD_ID_DOMAIN_MANIFEST "tinyfed/v1/manifest"

/* Bytes of a record for n devices. */
#define TFD_ID_RECORD_BYTES(n) \
    (TFD_ID_HEADER_BYTES + TFD_ID_MANIFEST_HEAD_BYTES + (size_t)(n) * TFD_ID_ENTRY_BYTES + TFD_ID_SIG_BYTES)

typedef struct {
    uint8_t ok;                  /* the record checked out */
    uint32_t device_id;
    uint8_t secret_key[64];      /* Monocypher's EdDSA secret key (seed || public key) */
    uint8_t public_key[32];
    uint8_t fleet_pk[32];
    uint8_t fleet_id[16];
    uint32_t manifest_version;
    uint16_t n;                  /* devices in the manifest */
    uint16_t min_neighbours;
    uint32_t dp_min_z_milli;
    uint16_t weight_floor;       /* 1/SA_WEIGHT_ONE sample per sample trained on (0..SA_WEIGHT_ONE) */
    uint16_t self_index;         /* this device's position in the manifest */
    const uint8_t *entries;      /* n x 36 bytes inside the record (the record must outlive this) */
    uint8_t manifest_hash[32];   /* H of the signed manifest bytes (as signed) */
} tfd_identity_t;

/* Check the record (see the top of this file) and derive the key pair.  On any
 * failure the identity is left wiped with ok = 0 and the status says why:
 * TFD_ERR_MSG_LENGTH (length / counts), TFD_ERR_ARG (magic, version, order,
 * own entry missing, a weight floor above SA_WEIGHT_ONE, reserved bytes), TFD_ERR_CRYPTO (the fleet signature, or the seed does not
 * give this device's public key). */
TFD_CHECK_RESULT tfd_status_t tfd_identity_init(tfd_identity_t *id, const uint8_t *record, size_t len);

/* The same with the record in two pieces: its first TFD_ID_HEADER_BYTES (this device's
 * id, seed and the fleet key) and the manifest (everything after), which many
 * simulated devices of one process can share.  Both must outlive the identity. */
TFD_CHECK_RESULT tfd_status_t tfd_identity_init_parts(tfd_identity_t *id, const uint8_t *head, size_t head_len,
                                                      const uint8_t *manifest, size_t manifest_len);

/* digest = BLAKE2b-256(TFD_ID_DOMAIN_MANIFEST || the manifest's first signed_len bytes):
 * what the fleet key signs (the toolchain, test fleets) and every device checks. */
void tfd_identity_manifest_digest(uint8_t digest[32], const uint8_t *manifest, size_t signed_len);

/* Wipe the secret key (and everything else). */
void tfd_identity_wipe(tfd_identity_t *id);

/* Position of `device_id` in the manifest (binary search), or -1. */
int tfd_identity_find(const tfd_identity_t *id, uint32_t device_id);

/* Id and public key of manifest entry `index` (< n). */
uint32_t tfd_identity_entry_id(const tfd_identity_t *id, unsigned index);
const uint8_t *tfd_identity_entry_pk(const tfd_identity_t *id, unsigned index);

/* sig = EdDSA(own key, digest[32]). */
void tfd_identity_sign(const tfd_identity_t *id, uint8_t sig[64], const uint8_t digest[32]);

/* TFD_OK iff sig is device `signer`'s signature of digest[32]: TFD_ERR_ARG if
 * signer is not in the manifest, TFD_ERR_CRYPTO if the signature is wrong. */
TFD_CHECK_RESULT tfd_status_t tfd_identity_verify(const tfd_identity_t *id, uint32_t signer, const uint8_t sig[64],
                                                  const uint8_t digest[32]);

/* The record linked into a board image (generated identity_data.c), or len 0. */
extern const uint8_t tfd_identity_blob[];
extern const size_t tfd_identity_blob_len;

#endif /* TFD_IDENTITY_H */
