"""Compile firmware C for the build machine ("native"): `tinyfed verify`, `tinyfed simulate`,
the loopback and federated devices, the SecAgg+ client harness, tests.

What each program is compiled from is listed in :mod:`tinyfed_toolchain.facts.manifests`.

Every source is compiled to its own object, cached by a hash of the compiler, the
flags, the include path, the source and every header it can see; the program is
then linked (and cached by the objects it is made of).  A source is compiled with
the caller's extra include dirs (the generated model and plan tables) only if it
needs them: it lives in one of them, or it -- or a header it includes, followed
through every ``#include``/``__has_include`` -- names a file found there.  Every
other source is compiled with the firmware include dir (and Monocypher's) alone,
so its object cannot depend on the generated tables and is shared by every model:
a new model compiles its tables and the few sources that include them, not the
whole device.  An include whose name a macro computes counts as needing the extra
dirs.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..facts.errors import BuildStepError
from ..facts.paths import BUILD, FIRMWARE_INCLUDE
from .third_party import THIRD_PARTY_CFLAGS, monocypher_dir, monocypher_sources

WARN_FLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes"]

# `#include "x"`, `#include <x>` and `__has_include("x")` / `__has_include(<x>)`; groups 2 and 4
# catches a name computed by a macro (`#include CFG`, `__has_include(CFG)`).
_INCLUDE_RE = re.compile(rb'^[ \t]*#[ \t]*include[ \t]*(?:[<"]([^>"\n]+)[>"]|([A-Za-z_]))'
                         rb'|__has_include[ \t]*\([ \t]*(?:[<"]([^>"\n]+)[>"]|([A-Za-z_]))', re.MULTILINE)


class CompileError(BuildStepError, RuntimeError):
    """The C compiler rejected the sources; the message carries its output."""


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.blake2b(digest_size=12)
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()


def _dir_headers(dirs: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        out += sorted(Path(d).rglob("*.h")) + sorted(Path(d).rglob("*.def"))
    return out


class _Sources:
    """What one compile_native call reads, read once: file contents and digests, and
    each file's ``#include`` edges resolved against the include path."""

    def __init__(self, search: Sequence[Path], extra: Sequence[Path]) -> None:
        self.search = [str(d) for d in search]
        self.extra = {str(d) for d in extra}
        self._digests: dict[str, bytes] = {}
        self._edges: dict[str, tuple[list[str], bool]] = {}
        self._dirs: dict[tuple[str, ...], bytes] = {}

    def digest(self, path: str) -> bytes:
        d = self._digests.get(path)
        if d is None:
            with open(path, "rb") as f:
                d = self._digests[path] = hashlib.blake2b(f.read(), digest_size=16).digest()
        return d

    def dir_digest(self, dirs: Sequence[Path]) -> bytes:
        """Every header under ``dirs`` (names and contents): what a macro-named include could reach."""
        key = tuple(map(str, dirs))
        if key not in self._dirs:
            self._dirs[key] = _digest(b for h in _dir_headers(dirs)
                                      for b in (str(h).encode(), self.digest(str(h)))).encode()
        return self._dirs[key]

    def edges(self, path: str) -> tuple[list[str], bool]:
        """The files ``path`` can include (a name is looked up next to it and in every
        dir of the include path; every hit counts) and whether one is in an extra dir."""
        got = self._edges.get(path)
        if got is None:
            with open(path, "rb") as f:
                found = _INCLUDE_RE.findall(f.read())
            out: list[str] = []
            # a computed name could be anything: compile with the extra dirs (and key by them)
            needs_extra = bool(self.extra) and any(m1 or m2 for _, m1, _, m2 in found)
            for name in ((a or b).decode("utf-8", "replace") for a, _, b, _ in found if a or b):
                for d in (os.path.dirname(path), *self.search):
                    cand = os.path.normpath(os.path.join(d, name))
                    if os.path.isfile(cand):
                        out.append(cand)
                        needs_extra = needs_extra or d in self.extra
            got = self._edges[path] = (out, needs_extra)
        return got

    def closure(self, src: str) -> tuple[list[str], bool]:
        """Every file ``src`` can include, transitively, and whether any comes through an extra dir."""
        seen: set[str] = set()
        needs_extra = False
        todo = [src]
        while todo:
            files, extra = self.edges(todo.pop())
            needs_extra = needs_extra or extra
            for f in files:
                if f not in seen:
                    seen.add(f)
                    todo.append(f)
        return sorted(seen), needs_extra


@dataclass(frozen=True)
class _Unit:
    """One source's compilation: its command and its object's cache key."""

    src: Path
    argv: tuple[str, ...]  # the compiler and flags, without -c/-o
    key: str


def _within(path: Path, dirs: Sequence[Path]) -> bool:
    return any(path == d or d in path.parents for d in dirs)


def _units(cc: str, flags: Sequence[str], sources: Sequence[Path], generic: Sequence[Path],
           full: Sequence[Path], extra: Sequence[Path]) -> list[_Unit]:
    """One unit per source: compiled with the ``full`` include path if it needs an
    ``extra`` dir, else with the ``generic`` one."""
    tree = _Sources(full, extra)
    units = []
    for src in sources:
        src = Path(os.path.normpath(Path(src).absolute()))
        seen, needs_extra = tree.closure(str(src))
        incs = full if needs_extra or _within(src, extra) else generic
        argv = (cc, *flags, *[f"-I{d}" for d in incs])
        parts = [*(a.encode() for a in argv), str(src).encode(), tree.digest(str(src)), tree.dir_digest(incs)]
        for h in seen:
            parts += [h.encode(), tree.digest(h)]
        units.append(_Unit(src, argv, _digest(parts)))
    return units


def _compile(unit: _Unit, objdir: Path) -> Path:
    obj = objdir / f"{unit.src.stem}-{unit.key}.o"
    if obj.exists():
        return obj
    tmp = obj.with_name(f"{obj.name}.{os.getpid()}.{id(unit)}.tmp")
    try:
        proc = subprocess.run([*unit.argv, "-c", str(unit.src), "-o", str(tmp)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise CompileError(f"native compile of {unit.src.name} failed ({unit.argv[0]}):\n{proc.stderr.strip()}")
        os.replace(tmp, obj)
    finally:
        tmp.unlink(missing_ok=True)
    return obj


def compile_jobs() -> int:
    """How many sources are compiled at once: ``TINYFED_NATIVE_JOBS``, default the CPU count."""
    env = os.environ.get("TINYFED_NATIVE_JOBS", "")
    return max(1, int(env)) if env.isdigit() else max(1, os.cpu_count() or 1)


def _include_paths(include_dirs: Sequence[Path], monocypher: bool) -> tuple[list[Path], list[Path], list[Path]]:
    """(generic, full, extra) include paths; full is a whole-program build's order:
    the firmware's include dir, the extra dirs, Monocypher's."""
    mono = [monocypher_dir()] if monocypher else []
    firmware_inc = Path(os.path.normpath(FIRMWARE_INCLUDE.absolute()))
    extra: list[Path] = []
    for d in (Path(os.path.normpath(Path(i).absolute())) for i in include_dirs):
        if d != firmware_inc and d not in extra:
            extra.append(d)
    return [firmware_inc, *mono], [firmware_inc, *extra, *mono], extra


def model_dependent_sources(sources: Sequence[Path], include_dirs: Sequence[Path], *,
                            monocypher: bool = False) -> list[Path]:
    """The sources compile_native compiles with ``include_dirs`` (once per model); the
    others are compiled without them, once for every model."""
    generic, full, extra = _include_paths(include_dirs, monocypher)
    return [u.src for u in _units("cc", [], sources, generic, full, extra) if len(u.argv) > 1 + len(generic)]


def compile_native(
    sources: Sequence[Path],
    include_dirs: Sequence[Path],
    out_name: str,
    *,
    extra_flags: Sequence[str] = (),
    cc: str | None = None,
    cache_dir: Path | None = None,
    monocypher: bool = False,
) -> Path:
    """Compile and link an executable (or, with ``-shared`` in ``extra_flags``, a shared
    library) for the build machine; return its path.  Objects and the result are cached
    (see the module doc): only sources whose inputs changed are compiled again.

    ``include_dirs`` are the extra include dirs (generated model / plan tables, a board's
    headers); a source gets them only if it needs them.  ``monocypher=True`` adds
    Monocypher 4.0.3 (``toolchain/image/third_party.py``: fetched and verified on first
    use): its include dir goes on the path and ``monocypher.c`` is compiled with ``-O2``,
    ``extra_flags`` (so sanitizers cover it) and without the project's warning flags.
    """
    cc = cc or os.environ.get("CC", "gcc")
    flags = [*WARN_FLAGS, "-O2", *extra_flags]
    generic, full, extra = _include_paths(include_dirs, monocypher)
    units = _units(cc, flags, sources, generic, full, extra)
    for src in (monocypher_sources() if monocypher else []):
        argv = (cc, *THIRD_PARTY_CFLAGS, "-O2", *extra_flags, f"-I{src.parent}")
        parts = [*(a.encode() for a in argv), str(src).encode(), src.read_bytes(),
                 *[b for h in _dir_headers([src.parent]) for b in (str(h).encode(), h.read_bytes())]]
        units.append(_Unit(Path(src), argv, _digest(parts)))
    cache = cache_dir or (BUILD / "native-bin")
    objdir = cache / "obj"
    objdir.mkdir(parents=True, exist_ok=True)
    link = [cc, *flags]
    exe = cache / f"{out_name}-{_digest([*(a.encode() for a in link), *(u.key.encode() for u in units)])}"
    if exe.exists():
        return exe
    with concurrent.futures.ThreadPoolExecutor(max_workers=compile_jobs()) as pool:
        objs = list(pool.map(lambda u: _compile(u, objdir), units))
    tmp = Path(f"{exe}.{os.getpid()}.tmp")
    try:
        proc = subprocess.run([*link, *map(str, objs), "-o", str(tmp), "-lm"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise CompileError(f"native link of {out_name} failed ({cc}):\n{proc.stderr.strip()}")
        os.replace(tmp, exe)
    finally:
        tmp.unlink(missing_ok=True)
    return exe
