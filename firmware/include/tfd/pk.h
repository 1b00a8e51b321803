/* tinyfed — the public-key operations of the device crypto, behind one seam.
 *
 * X25519 (SecAgg+ key agreement, firmware/src/secagg/kdf.c) and EdDSA
 * signature checks (device identity, firmware/src/identity/identity.c) are
 * the device's costliest calls.  A device image gets them from Monocypher
 * 4.0.3 (firmware/src/crypto/pk.c).  Programs compiled for the build machine
 * that run many virtual devices (the in-process device library, the host
 * device, the SecAgg+ client harness: toolchain/facts/manifests.py) get
 * firmware/native/pk_host.c instead: X25519 in radix 2^51 with 128-bit
 * products, and EdDSA checks memoized by every input byte.  Both give the same
 * bytes for every input (tests/test_pk_host.py); nothing else changes.
 *
 * Semantics are Monocypher's: tfd_pk_x25519 clamps the scalar and ignores the
 * top bit of the peer's u-coordinate; tfd_pk_eddsa_check returns 0 for a
 * valid signature, -1 otherwise.
 */
#ifndef TFD_PK_H
#define TFD_PK_H

#include <stddef.h>
#include <stdint.h>

void tfd_pk_x25519(uint8_t shared[32], const uint8_t secret_key[32], const uint8_t their_public_key[32]);
void tfd_pk_x25519_public_key(uint8_t public_key[32], const uint8_t secret_key[32]);
int tfd_pk_eddsa_check(const uint8_t signature[64], const uint8_t public_key[32], const uint8_t *message,
                       size_t message_size);

#endif /* TFD_PK_H */
