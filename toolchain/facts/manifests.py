"""C source manifests: which firmware sources each program is compiled from.

The one place the source lists are assembled -- for the firmware images
(cross-compiled, ``image.firmware``) and for the programs compiled for the
build machine (``image.native_cc``): the verify harness, the loopback device,
the federated device, the SecAgg+ client harness, the SecAgg test vectors and
the training library.  Lists are sorted, so a build is reproducible.
"""

from __future__ import annotations

from pathlib import Path

from .paths import FIRMWARE, NATIVE

SRC = FIRMWARE / "src"


def _dir(*subdirs: str) -> list[Path]:
    out: list[Path] = []
    for sub in subdirs:
        out += sorted((SRC / sub).glob("*.c"))
    return out


def inference_sources() -> list[Path]:
    """The inference runtime: interpreter, status strings and every kernel,
    reference and optimized (``kernels/dsp/``: compiled in with
    ``-DTFD_KERNELS_DSP=1``, empty translation units otherwise)."""
    return _dir("runtime", "kernels", "kernels/dsp")


def train_sources() -> list[Path]:
    """The on-device training engine (firmware/src/train)."""
    return _dir("train")


def proto_sources() -> list[Path]:
    """The device protocol plus what it needs (no model runtime)."""
    return _dir("proto") + [SRC / "eval" / "metrics.c", SRC / "runtime" / "status.c"]


def secagg_sources() -> list[Path]:
    """The secure-aggregation client, the device identity it signs and verifies with,
    and the wire-table codec its bodies are decoded with (proto/wire.c, crc32.c);
    needs Monocypher: ``monocypher=True`` when compiling."""
    return _dir("crypto", "secagg", "identity") + [SRC / "proto" / "wire.c", SRC / "proto" / "crc32.c"]


def device_sources() -> list[Path]:
    """Everything a device image has, minus board and app: runtime + kernels,
    training engine, round logic, protocol, storage, eval, secure aggregation, identity."""
    return inference_sources() + _dir("train", "fl", "proto", "storage", "eval", "crypto", "secagg", "identity")


def image_sources() -> list[Path]:
    """Everything a firmware image compiles: ``firmware/src/**/*.c`` except the apps."""
    return sorted(p for p in SRC.rglob("*.c") if (SRC / "app") not in p.parents)


def native(name: str) -> Path:
    """A harness compiled for the build machine: ``firmware/native/<name>.c``."""
    return NATIVE / f"{name}.c"


# ---- the native programs ---------------------------------------------------------------
#: the device's implementations (Monocypher) of the operations the host builds replace
HOST_CRYPTO = {SRC / "crypto" / "pk.c": NATIVE / "pk_host.c", SRC / "crypto" / "keystream.c": NATIVE / "keystream_host.c"}


def host_crypto(sources: list[Path]) -> list[Path]:
    """``sources`` with the device's public-key operations and PRG keystream (``crypto/``:
    Monocypher) replaced by the host build's (``native/pk_host.c``: radix-2^51 X25519, memoized
    EdDSA checks; ``native/keystream_host.c``: ChaCha20 four blocks at a time) -- the same bytes
    for every input (tests/test_pk_host.py), for the programs that run many virtual devices."""
    return [HOST_CRYPTO.get(s, s) for s in sources]


def verify_sources(model_dir: Path) -> list[Path]:
    """``tinyfed verify``: the runtime, the emitted model and a stdin/stdout driver."""
    return [*inference_sources(), Path(model_dir) / "model_data.c", native("verify_main")]


def loopback_sources() -> list[Path]:
    """The loopback device: the protocol with a small deterministic application."""
    return [*proto_sources(), native("host_link"), native("proto_loopback")]


def fl_device_sources(model_dir: Path, train_dir: Path | None = None) -> list[Path]:
    """A whole federated device: over TCP, or as the in-process library with -DFDH_LIBRARY
    (model tables from ``model_dir``, training plan from ``train_dir``, default the same);
    fl_batch: the library's wire-less fast path for many devices (host/direct.py)."""
    model_dir = Path(model_dir)
    train_dir = Path(train_dir) if train_dir is not None else model_dir
    return [*host_crypto(device_sources()), model_dir / "model_data.c", train_dir / "train_data.c",
            native("host_link"), native("fl_device_host"), native("fl_batch")]


def secagg_client_sources() -> list[Path]:
    """The device's SecAgg+ client driven through a pipe (with the host build's crypto)."""
    return [*host_crypto(secagg_sources()), native("secagg_client_host")]


def secagg_vectors_sources() -> list[Path]:
    """The C side of the SecAgg+ cross-language test vectors."""
    return [*secagg_sources(), native("secagg_vectors")]


def fuzz_secagg_sources() -> list[Path]:
    """The fuzz target of the SecAgg+ bodies and the device client (host.secagg.fuzz)."""
    return [native("fuzz_secagg"), native("fleet_maker"), *secagg_sources()]


def train_lib_sources() -> tuple[list[Path], list[Path]]:
    """The training library: (model-independent sources, model-specific glue).
    The model's ``model_data.c`` and the plan's ``train_data.c`` come on top."""
    return [*inference_sources(), *train_sources()], [native("train_lib")]


__all__ = [
    "inference_sources", "train_sources", "proto_sources", "secagg_sources", "device_sources",
    "image_sources", "native", "host_crypto", "verify_sources", "loopback_sources", "fl_device_sources",
    "secagg_client_sources", "secagg_vectors_sources", "fuzz_secagg_sources", "train_lib_sources",
]
