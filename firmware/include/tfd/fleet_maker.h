/* tinyfed — a throwaway fleet for harnesses and benchmarks that run several
 * SecAgg+ clients in one program (firmware/native/fuzz_secagg.c,
 * bench/secagg_stages.c): a fleet key, one device key per id and the signed
 * manifest, built with Monocypher as the toolchain builds them
 * (tinyfed_toolchain.image.provision), then checked by tfd_identity_init like a
 * device's own record.  Never for a real fleet: the seeds come from `random`. */
#ifndef TFD_FLEET_MAKER_H
#define TFD_FLEET_MAKER_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/identity.h"
#include "tfd/status.h"

/* The provisioning record of device ids[who] of a fleet of n devices (ids
 * strictly increasing) into rec (cap >= TFD_ID_RECORD_BYTES(n)); the same
 * fleet seed and device seeds for every `who` (all from the 32-byte `seed`). */
TFD_CHECK_RESULT tfd_status_t tfd_fleet_record(uint8_t *rec, size_t cap, size_t *len, const uint32_t *ids, unsigned n,
                                               unsigned who, const uint8_t seed[32], uint16_t min_neighbours);

#endif /* TFD_FLEET_MAKER_H */
