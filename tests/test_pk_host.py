"""The host build's crypto (firmware/native/pk_host.c: X25519 in radix 2^51, memoized
EdDSA checks; firmware/native/keystream_host.c: the SecAgg+ PRG's ChaCha20 four blocks at a
time), which the programs that run many virtual devices use instead of the device image's
(firmware/src/crypto/: Monocypher), gives the same bytes and the same verdicts:

* X25519 equals Monocypher's on the RFC 7748 vectors and on random scalars and
  u-coordinates of every kind (top bit set, u in [p, 2^255), small u) -- and
  OpenSSL's (the ``cryptography`` package the host's SecAgg+ reference uses);
* a memoized signature check answers exactly what Monocypher answers: a valid
  triple is answered from the table only when every byte repeats, an invalid
  signature is refused every time (it is never stored), also with several
  threads sharing the table;
* the keystream words equal the device's function's (random keys, offsets, lengths, signs,
  a wrapping block counter) and the host's Python PRG (``cryptography``'s ChaCha20);
* the host builds take the host files, the device images keep Monocypher.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from tinyfed_host.loopback import SANITIZE_FLAGS, SANITIZER_ENV
from tinyfed_toolchain.facts import manifests as MF
from tinyfed_toolchain.facts.paths import ROOT
from tinyfed_toolchain.image.native_cc import compile_native
from test_secagg_vectors import RFC7748_5_2, RFC7748_ITER  # the published X25519 vectors, defined once

PK_CHECK = ROOT / "tests" / "c" / "pk_check.c"
ENV = {**os.environ, **SANITIZER_ENV}


def pk_check(sanitize: bool = False) -> Path:
    return compile_native([MF.native("pk_host"), MF.native("keystream_host"), PK_CHECK], [],
                          "pk_check" + ("-asan" if sanitize else ""),
                          extra_flags=list(SANITIZE_FLAGS) if sanitize else [], monocypher=True)


def run(*args: str, sanitize: bool = False, stdin: str = "") -> str:
    p = subprocess.run([str(pk_check(sanitize)), *args], input=stdin, capture_output=True, text=True, timeout=600,
                       env=ENV)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p.stdout


def x25519_pairs(pairs: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    out = run("x25519", stdin="".join(f"{sk.hex()} {u.hex()}\n" for sk, u in pairs))
    return [(bytes.fromhex(a), bytes.fromhex(b)) for a, b in (line.split() for line in out.splitlines())]


def test_x25519_rfc7748_vectors() -> None:
    # RFC 7748 section 5.2 (the second u has its top bit set: ignored)
    vectors = RFC7748_5_2
    got = x25519_pairs([(bytes.fromhex(k), bytes.fromhex(u)) for k, u, _ in vectors])
    for (host, mono), (_, _, want) in zip(got, vectors):
        assert host.hex() == mono.hex() == want
    # the iterated vector: k, u <- X25519(k, u), k (both implementations in step, each iteration)
    for n, want in RFC7748_ITER.items():
        assert run("iterate", str(n)).strip() == want


def test_x25519_random_inputs_equal_monocypher() -> None:
    assert run("random", "8000", "1").strip() == "x25519 ok 8000"


def test_x25519_equals_openssl_on_random_inputs() -> None:
    pairs = [(os.urandom(32), os.urandom(32)) for _ in range(300)]
    pairs += [(os.urandom(32), bytes([b]) + bytes(31)) for b in range(2, 10)]  # small u (1 and 0: OpenSSL refuses)
    for (sk, u), (host, mono) in zip(pairs, x25519_pairs(pairs)):
        ref = X25519PrivateKey.from_private_bytes(sk).exchange(X25519PublicKey.from_public_bytes(u))
        assert host == mono == ref


def test_eddsa_memo_answers_as_monocypher() -> None:
    assert run("memo").strip() == "memo ok"


def test_eddsa_memo_shared_by_threads() -> None:
    out = run("threads", "4", "300").split()
    assert out[:3] == ["threads", "wrong", "0"]
    checks, hits = int(out[4]), int(out[6])
    assert checks == 4 * 3 * 2 * 300
    assert hits >= 4 * 3 * 300 - 4 * 300  # every valid triple after its first check (any thread's)


def test_keystream_equals_the_device_function() -> None:
    assert run("prg", "3000", "3").strip() == "prg ok 3000"


def test_keystream_equals_the_python_prg() -> None:
    from tinyfed_host.secagg import primitives as P

    for n, offset in ((1, 0), (37, 0), (1000, 0), (100, 16 * 5 + 3)):
        key = os.urandom(32)
        words = [int(w, 16) for w in run("prgout", key.hex(), str(n), str(offset)).split()]
        ref = P.prg(key, n, offset)
        assert words == [int(x) for x in ref]


def test_sanitized() -> None:
    assert run("random", "300", "2", sanitize=True).strip() == "x25519 ok 300"
    assert run("memo", "200", sanitize=True).strip() == "memo ok"
    assert run("prg", "100", "4", sanitize=True).strip() == "prg ok 100"


def test_host_builds_take_the_host_crypto_device_images_keep_monocypher(tmp_path: Path) -> None:
    for device, host in MF.HOST_CRYPTO.items():
        assert device in MF.image_sources() and host not in MF.image_sources()
        assert device in MF.device_sources() and device in MF.secagg_sources()
        for srcs in (MF.fl_device_sources(tmp_path), MF.secagg_client_sources()):
            assert host in srcs and device not in srcs
        for srcs in (MF.secagg_vectors_sources(), MF.fuzz_secagg_sources()):  # these stay on the device's crypto
            assert device in srcs and host not in srcs
