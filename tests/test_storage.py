"""Persistence of trained parameters (firmware/src/storage/param_store.c):
A/B slots + CRC-32, so a reset at any point of a save keeps the previous good
copy.

The C store is compiled for the host against a fake NOR flash
(tests/c/param_store_check.c) that can cut the power after any number of
erased / programmed bytes; the record layout documented in
tfd/param_store.h is checked from Python in both directions (Python reads
what C wrote, C loads what Python wrote)."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from tinyfed_host.loopback import SANITIZE_FLAGS, SANITIZER_ENV
from tinyfed_toolchain.image.native_cc import compile_native
from tinyfed_toolchain.facts.paths import FIRMWARE, ROOT

HEADER = 48
MAGIC = 0x50444654


def _harness() -> Path:
    src = [FIRMWARE / "src" / "storage" / "param_store.c", FIRMWARE / "src" / "proto" / "crc32.c",
           FIRMWARE / "src" / "runtime" / "status.c", ROOT / "tests" / "c" / "param_store_check.c"]
    return compile_native(src, [], "param_store_check-asan", extra_flags=list(SANITIZE_FLAGS))


def _run(*args: object) -> str:
    p = subprocess.run([str(_harness()), *map(str, args)], capture_output=True, text=True, timeout=120,
                       env={**SANITIZER_ENV})
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def _fill(n: int, seed: int) -> bytes:
    """The harness's payload generator (tests/c/param_store_check.c fill())."""
    x = (seed * 2654435761 + 12345) & 0xFFFFFFFF
    out = bytearray()
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out.append((x >> 16) & 0xFF)
    return bytes(out)


def _hash(b: int = 3) -> bytes:
    return bytes((b + 17 * i) & 0xFF for i in range(16))


def _record(generation: int, round_: int, payload: bytes, model_hash: bytes) -> bytes:
    head = struct.pack("<IHHIIII16s", MAGIC, 1, HEADER, generation, round_, len(payload),
                       zlib.crc32(payload), model_hash)
    head += struct.pack("<I", zlib.crc32(head)) + b"\xff" * 4
    assert len(head) == HEADER
    return head + payload


def _parse(slot: bytes) -> dict[str, object] | None:
    magic, version, hbytes, gen, rnd, n, pcrc, h = struct.unpack_from("<IHHIIII16s", slot)
    (hcrc,) = struct.unpack_from("<I", slot, 40)
    if magic != MAGIC or version != 1 or hbytes != HEADER or zlib.crc32(slot[:40]) != hcrc:
        return None
    payload = slot[HEADER:HEADER + n]
    if zlib.crc32(payload) != pcrc:
        return None
    return {"generation": gen, "round": rnd, "payload": payload, "hash": h}


@pytest.mark.parametrize("unit,size,length", [(256, 2048, 300), (4096, 16384, 1000), (128, 1024, 128 - HEADER)])
def test_power_cut_at_every_step_keeps_a_good_copy(unit: int, size: int, length: int) -> None:
    out = _run("sweep", unit, size, length, 11)
    kv = dict(t.split("=") for t in out.split()[1:])
    slot = -(-(HEADER + length) // unit) * unit
    steps = slot + length + 44  # erase the slot, program the payload, then the header (44 bytes + 4 erased)
    assert int(kv["steps"]) == steps
    # three passes (two prior records, one, none), each cut at k = 0..steps
    assert int(kv["cuts"]) == 3 * (steps + 1)
    # only an uncut save (k == steps) may load the new copy: the others keep the old one
    assert int(kv["new"]) >= 3 and int(kv["old"]) + int(kv["new"]) == int(kv["cuts"])
    assert int(kv["new"]) <= 3 + 3  # a cut inside the last header byte may leave it complete


def test_python_reads_what_c_wrote(tmp_path: Path) -> None:
    img = tmp_path / "flash.bin"
    out = _run("save", img, 256, 2048, 7, 300, 1)
    assert out.strip() == "slot_bytes=512"
    flash = img.read_bytes()
    assert len(flash) == 2048
    slots = [_parse(flash[0:512]), _parse(flash[512:1024])]
    assert all(s is not None for s in slots)
    by_round = {s["round"]: s for s in slots if s}
    assert set(by_round) == {6, 7}
    assert by_round[6]["generation"] == 1 and by_round[7]["generation"] == 2
    assert by_round[7]["payload"] == _fill(300, 1 + 7) and by_round[6]["payload"] == _fill(300, 1 + 6)
    assert by_round[7]["hash"] == _hash()
    assert flash[1024:] == b"\xff" * 1024  # the store keeps to its two slots


def test_c_loads_what_python_wrote_and_picks_the_newest_valid(tmp_path: Path) -> None:
    unit, size, n = 256, 2048, 300
    slot = 512  # 48 + 300 bytes rounded up to the 256-byte erase unit
    old, new = _fill(n, 40), _fill(n, 41)

    def image(a: bytes, b: bytes) -> Path:
        flash = bytearray(b"\xff" * size)
        flash[0:len(a)] = a
        flash[slot:slot + len(b)] = b
        p = tmp_path / f"img{len(list(tmp_path.iterdir()))}.bin"
        p.write_bytes(bytes(flash))
        return p

    def load(p: Path, hash_byte: int = 3, length: int = n) -> dict[str, int]:
        return {k: int(v) for k, v in (t.split("=") for t in _run("load", p, unit, length, hash_byte).split())}

    good = image(_record(4, 10, old, _hash()), _record(5, 11, new, _hash()))
    r = load(good)
    assert (r["found"], r["slot"], r["generation"], r["round"], r["crc"]) == (1, 1, 5, 11, zlib.crc32(new))
    # generations compare as serial numbers: 0 is newer than 0xFFFFFFFF
    wrap = image(_record(0xFFFFFFFF, 10, old, _hash()), _record(0, 11, new, _hash()))
    assert load(wrap)["round"] == 11
    # a flipped payload bit in the newest copy: the previous one is used
    bad = bytearray(_record(5, 11, new, _hash()))
    bad[HEADER + 17] ^= 0x04
    assert load(image(_record(4, 10, old, _hash()), bytes(bad)))["round"] == 10
    # a corrupt header CRC: same
    bad = bytearray(_record(5, 11, new, _hash()))
    bad[41] ^= 0x80
    assert load(image(_record(4, 10, old, _hash()), bytes(bad)))["round"] == 10
    # both damaged: nothing found
    bad2 = bytearray(_record(4, 10, old, _hash()))
    bad2[HEADER] ^= 1
    assert load(image(bytes(bad2), bytes(bad)))["found"] == 0
    # another model's parameters, or another size, are never loaded
    assert load(good, hash_byte=4)["found"] == 0
    assert load(good, length=n - 4)["found"] == 0
    # a record for another model does not shadow this model's older record
    other = image(_record(4, 10, old, _hash()), _record(5, 11, new, _hash(9)))
    assert load(other)["round"] == 10
