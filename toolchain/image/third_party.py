"""Third-party C sources fetched at build time, verified, cached under build/.

Monocypher 4.0.3 (X25519, ChaCha20, XChaCha20-Poly1305, BLAKE2b; BSD-2-Clause
OR CC0-1.0, by Loup Vaillant) is the only one.  It ships inside the **sdist** of
``pymonocypher==4.0.3.4`` on PyPI; nothing of it is ever copied into the
source tree.  ``monocypher_dir()``:

1. returns ``build/third_party/monocypher-4.0.3/`` if it holds ``monocypher.c``
   and ``monocypher.h`` with the pinned SHA-256 digests;
2. otherwise gets the sdist -- from ``$TINYFED_MONOCYPHER_SDIST`` (a local
   file, for offline machines) or with ``pip download --no-deps --no-binary
   pymonocypher --no-build-isolation --require-hashes`` (pip refuses an archive
   whose hash differs before it runs anything of it; nothing is built: the
   sdist's metadata is read with the venv's own setuptools, no build
   dependencies are fetched -- ``--no-binary :all:`` made pip build Cython
   from source for them, minutes of silence) -- checks the archive's SHA-256 against
   ``PYMONOCYPHER_SDIST_SHA256`` itself, extracts only the two files, checks
   their digests and moves them into place atomically (under a file lock, so
   concurrent builds fetch once).

Any mismatch raises ``ThirdPartyError`` naming both digests; nothing is used.

Flash cost (arm-none-eabi-gcc 12.2, Cortex-M4F, ``-Os``): the whole of
monocypher.c is 36.7 KB of .text; images link with ``--gc-sections`` and
``-ffunction-sections``, so only what is called is kept (see
tests/test_secagg_crypto.py for the measured figure of the SecAgg
primitives).

Examples
--------
>>> d = monocypher_dir()               # doctest: +SKIP
>>> sorted(p.name for p in d.iterdir()) # doctest: +SKIP
['monocypher.c', 'monocypher.h']
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ..facts.errors import BuildStepError
from ..facts.paths import BUILD

MONOCYPHER_VERSION = "4.0.3"
PYMONOCYPHER_REQUIREMENT = "pymonocypher==4.0.3.4"
PYMONOCYPHER_SDIST = "pymonocypher-4.0.3.4.tar.gz"
# SHA-256 of the sdist as published on PyPI (checked against
# https://pypi.org/simple/pymonocypher/ on 2026-11-21).
PYMONOCYPHER_SDIST_SHA256 = "5e56e3d3eb770a53e0b9f6274146663c11a11f3d0de5cd48e3be0428d1b07a4a"
# SHA-256 of the two files inside it ("// Monocypher version 4.0.3").
MONOCYPHER_FILES_SHA256: dict[str, str] = {
    "monocypher.c": "57eb914fc88136119bd41655cccb8c250048bf54d470540625186f8ab16f64be",
    "monocypher.h": "c494da712122da7ff679fdcf318a5317e84972b6c950fe9d896212947797facd",
}
SDIST_ENV = "TINYFED_MONOCYPHER_SDIST"

# Flags for third-party C: the image's CPU / optimisation / section flags are
# added by the caller; the project's -Wall -Wextra -Werror are not applied
# (their code, their warnings), but nothing else is relaxed.
THIRD_PARTY_CFLAGS: tuple[str, ...] = ("-std=c11", "-g", "-ffunction-sections", "-fdata-sections", "-fno-common")


class ThirdPartyError(BuildStepError, RuntimeError):
    """A third-party source could not be fetched or failed verification."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def third_party_root() -> Path:
    return BUILD / "third_party"


def _cache_dir() -> Path:
    return third_party_root() / f"monocypher-{MONOCYPHER_VERSION}"


def _cache_ok(d: Path) -> bool:
    return all((d / name).is_file() and _sha256(d / name) == digest
               for name, digest in MONOCYPHER_FILES_SHA256.items())


def verify_sdist(path: Path) -> None:
    """Raise ``ThirdPartyError`` unless ``path`` has the pinned SHA-256."""
    got = _sha256(path)
    if got != PYMONOCYPHER_SDIST_SHA256:
        raise ThirdPartyError(
            f"{path}: SHA-256 mismatch for {PYMONOCYPHER_REQUIREMENT} sdist\n"
            f"  expected {PYMONOCYPHER_SDIST_SHA256}\n  got      {got}\n"
            "refusing to use it (a tampered or different archive)"
        )


def _download_sdist(dest: Path) -> Path:
    req = dest / "requirements.txt"
    req.write_text(f"{PYMONOCYPHER_REQUIREMENT} --hash=sha256:{PYMONOCYPHER_SDIST_SHA256}\n")
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "pymonocypher",
            "--no-build-isolation", "--require-hashes", "--disable-pip-version-check", "-r", str(req), "-d", str(dest)]
    proc = subprocess.run(argv, capture_output=True, text=True)
    sdist = dest / PYMONOCYPHER_SDIST
    if proc.returncode != 0 or not sdist.is_file():
        raise ThirdPartyError(
            f"could not download {PYMONOCYPHER_REQUIREMENT} (Monocypher {MONOCYPHER_VERSION} sources):\n"
            f"{proc.stderr.strip()[-2000:]}\n$ {' '.join(argv)}\n"
            f"offline? point ${SDIST_ENV} at a copy of {PYMONOCYPHER_SDIST}"
        )
    return sdist


def extract_monocypher(sdist: Path, out_dir: Path) -> None:
    """Verify ``sdist`` and write only monocypher.c / monocypher.h into ``out_dir``."""
    verify_sdist(sdist)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist, "r:gz") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers()
                   if m.isfile() and Path(m.name).name in MONOCYPHER_FILES_SHA256
                   and len(Path(m.name).parts) == 2}  # <top>/monocypher.[ch] only
        for name in MONOCYPHER_FILES_SHA256:
            if name not in members:
                raise ThirdPartyError(f"{sdist}: no top-level {name} inside")
            src = tar.extractfile(members[name])
            assert src is not None
            (out_dir / name).write_bytes(src.read())
    for name, digest in MONOCYPHER_FILES_SHA256.items():
        got = _sha256(out_dir / name)
        if got != digest:
            raise ThirdPartyError(f"{sdist}: {name} SHA-256 {got}, expected {digest}")


@functools.lru_cache(maxsize=None)
def _monocypher_dir_cached(root: str) -> Path:
    d = _cache_dir()
    if _cache_ok(d):
        return d
    root_dir = Path(root)
    root_dir.mkdir(parents=True, exist_ok=True)
    with open(root_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _cache_ok(d):  # another process fetched it meanwhile
            return d
        with tempfile.TemporaryDirectory(dir=root_dir, prefix=".fetch-") as tmp:
            tmp_dir = Path(tmp)
            local = os.environ.get(SDIST_ENV)
            sdist = Path(local) if local else _download_sdist(tmp_dir)
            staged = tmp_dir / "monocypher"
            extract_monocypher(sdist, staged)
            if d.exists():
                shutil.rmtree(d)
            os.replace(staged, d)
    if not _cache_ok(d):
        raise ThirdPartyError(f"{d}: Monocypher files failed verification after extraction")
    return d


def monocypher_dir() -> Path:
    """Directory holding the verified ``monocypher.c`` and ``monocypher.h``
    (fetched on first use; see the module docstring)."""
    return _monocypher_dir_cached(str(third_party_root()))


def monocypher_sources() -> list[Path]:
    """The C sources to compile (``monocypher.c``)."""
    return [monocypher_dir() / "monocypher.c"]


def is_third_party(path: Path) -> bool:
    """True for sources under ``build/third_party`` (compiled with
    ``THIRD_PARTY_CFLAGS`` instead of the project's warning flags)."""
    try:
        Path(path).resolve().relative_to(third_party_root().resolve())
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m tinyfed_toolchain.image.third_party``: fetch + verify, print the path."""
    del argv
    try:
        print(monocypher_dir())
    except ThirdPartyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
