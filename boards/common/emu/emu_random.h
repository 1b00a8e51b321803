/* tinyfed boards — seeded random source for EMULATED boards.
 *
 * NOT A SECURE RANDOM NUMBER GENERATOR.  QEMU's MPS2 machines have no hardware
 * RNG, so tfd_port_random() on them is a generator built on Monocypher's keyed
 * BLAKE2b (crypto_blake2b_keyed_*; no hand-written hash) keyed with:
 *   - tfd_image_seed[32]: a per-image value injected by the build driver
 *     (toolchain/image/firmware.py writes it into the image; it is in the ELF, so
 *     anyone holding the image knows it);
 *   - an optional per-boot seed from the host (semihosting command line
 *     "--seed=<64 hex digits>"; host/emulator.py passes os.urandom(32)), so two
 *     boards booted from one image still draw different keys;
 *   - SysTick counts at init and at every call (little entropy in an emulator).
 * key = BLAKE2b-256(key = image seed, "tinyfed emulated rng v2\0" || boot seed
 * || clock count); output block i (64 bytes) = BLAKE2b-512(key, "out" ||
 * counter || clock count); after every call key = BLAKE2b-256(key, "next" ||
 * counter) (a ratchet).  Everything that keys it is either in the image or
 * chosen by the host that launched QEMU, so an observer who knows those can
 * predict every output: keys drawn from it (e.g. SecAgg X25519 keys) protect
 * nothing against that host.  Good enough to make emulated runs realistic;
 * real-board ports (stm32f746g-disco, nrf52840) use the chip's TRNG instead. */
#ifndef TFD_EMU_RANDOM_H
#define TFD_EMU_RANDOM_H

#include <stddef.h>
#include <stdint.h>

#include "tfd/status.h"

/* Defined in the build's generated image_seed.c (toolchain/image/firmware.py). */
extern const uint8_t tfd_image_seed[32];

void tfd_emu_random_init(void);
TFD_CHECK_RESULT tfd_status_t tfd_emu_random(uint8_t *out, size_t len);

/* 1 if the host supplied a per-boot seed. */
int tfd_emu_random_has_boot_seed(void);

#endif /* TFD_EMU_RANDOM_H */
