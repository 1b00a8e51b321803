"""Compile firmware C for the host (tests, `tinyfed verify`, `tinyfed simulate`).

Builds are cached by a hash of every source, header and flag, so a test suite
that compiles the same model twice pays once.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Iterable, Sequence

from .paths import BUILD, FIRMWARE, FIRMWARE_INCLUDE
from .third_party import THIRD_PARTY_CFLAGS, monocypher_dir, monocypher_sources

WARN_FLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes"]


class CompileError(RuntimeError):
    """The C compiler rejected the sources; the message carries its output."""


def inference_sources() -> list[Path]:
    """The inference runtime only: interpreter, status strings and every kernel
    (firmware images compile more: see firmware.image_sources)."""
    srcs = sorted((FIRMWARE / "src" / "runtime").glob("*.c")) + sorted((FIRMWARE / "src" / "kernels").glob("*.c"))
    return srcs


def secagg_sources() -> list[Path]:
    """The secure-aggregation primitives (firmware/src/secagg/*.c); they need
    Monocypher: compile with ``compile_host(..., monocypher=True)``."""
    return sorted((FIRMWARE / "src" / "secagg").glob("*.c"))


def _digest(paths: Iterable[Path], flags: Sequence[str]) -> str:
    h = hashlib.blake2b(digest_size=12)
    for f in flags:
        h.update(f.encode() + b"\0")
    for p in sorted(set(paths)):
        h.update(str(p).encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


def compile_host(
    sources: Sequence[Path],
    include_dirs: Sequence[Path],
    out_name: str,
    *,
    extra_flags: Sequence[str] = (),
    cc: str | None = None,
    cache_dir: Path | None = None,
    monocypher: bool = False,
) -> Path:
    """Compile and link a host executable; return its path (cached).

    ``monocypher=True`` adds Monocypher 4.0.3 (``toolchain/third_party.py``:
    fetched and verified on first use): its include dir goes on the path and
    ``monocypher.c`` is compiled separately with ``-O2``, ``extra_flags`` (so
    sanitizers cover it) and without the project's warning flags, then linked.
    """
    cc = cc or os.environ.get("CC", "gcc")
    flags = [*WARN_FLAGS, "-O2", *extra_flags]
    third = monocypher_sources() if monocypher else []
    incs = [FIRMWARE_INCLUDE, *include_dirs, *([monocypher_dir()] if monocypher else [])]
    headers: list[Path] = []
    for d in incs:
        headers += list(Path(d).rglob("*.h")) + list(Path(d).rglob("*.def"))
    key = _digest(list(sources) + third + headers, [cc, *flags, *map(str, incs)])
    cache = cache_dir or (BUILD / "host-bin")
    cache.mkdir(parents=True, exist_ok=True)
    exe = cache / f"{out_name}-{key}"
    if exe.exists():
        return exe
    tmp = Path(f"{exe}.{os.getpid()}.tmp")
    objs: list[Path] = []
    try:
        for i, src in enumerate(third):
            obj = Path(f"{tmp}.{i}.o")
            objs.append(obj)
            cmd = [cc, *THIRD_PARTY_CFLAGS, "-O2", *extra_flags, f"-I{src.parent}", "-c", str(src), "-o", str(obj)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise CompileError(f"host compile of {src.name} failed ({cc}):\n{proc.stderr.strip()}")
        cmd = [cc, *flags, *[f"-I{d}" for d in incs], *map(str, sources), *map(str, objs),
               "-o", str(tmp), "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CompileError(f"host compile failed ({cc}):\n{proc.stderr.strip()}")
        os.replace(tmp, exe)
    finally:
        tmp.unlink(missing_ok=True)
        for obj in objs:
            obj.unlink(missing_ok=True)
    return exe
