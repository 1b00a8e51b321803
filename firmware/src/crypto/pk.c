/* tinyfed — the public-key operations of a device image (tfd/pk.h): Monocypher. */
#include "tfd/pk.h"

#include "monocypher.h"

void tfd_pk_x25519(uint8_t shared[32], const uint8_t secret_key[32], const uint8_t their_public_key[32])
{
    crypto_x25519(shared, secret_key, their_public_key);
}

void tfd_pk_x25519_public_key(uint8_t public_key[32], const uint8_t secret_key[32])
{
    crypto_x25519_public_key(public_key, secret_key);
}

int tfd_pk_eddsa_check(const uint8_t signature[64], const uint8_t public_key[32], const uint8_t *message,
                       size_t message_size)
{
    return crypto_eddsa_check(signature, public_key, message, message_size);
}
