"""Cross-build firmware images for a board (arm-none-eabi-gcc).

One description of an image build, used by ``build_image`` here and by the
PlatformIO builder (boards/platformio/builder/main.py), so both compile the same
sources with the same flags:

* sources: ``firmware/src/**/*.c`` except ``firmware/src/app/``, plus the app
  (``firmware/src/app/<app>.c`` or an explicit ``.c`` path), ``boards/common/*.c``,
  the board's extra source dirs (``board.json`` ``source_dirs``), ``boards/<board>/*.c``,
  every ``.c`` in the generated model directory, a generated ``image_seed.c``,
  any ``extra_sources`` and, in every image, Monocypher 4.0.3
  (``toolchain/image/third_party.py``: fetched once into ``build/third_party/``,
  SHA-256 pinned; its include dir is on the path);
* flags: the board's CPU flags (``board.json``), ``-std=c11 -Wall -Wextra -Werror``,
  ``-ffunction-sections -fdata-sections``; third-party sources get the same CPU,
  optimisation and section flags but not the project's warning flags
  (``BuildPlan.cflags_for``); link with ``--gc-sections`` (only the Monocypher
  functions an image calls are kept), ``nano.specs``, ``-nostartfiles`` and the
  board's linker script, which enforces the real chip's flash and SRAM
  (overridable with ``flash_kb`` / ``ram_kb``).

Objects are cached by content (hash of the compiler flags other than -D/-I,
and the preprocessed source) under ``build/.objcache``, so boards with the
same CPU flags share what no board define changes; compiles run on 2 jobs.

Examples
--------
>>> info = build_image("mps2-an386", Path("build/model_c"), Path("build/img"))  # doctest: +SKIP
>>> print(info.statement())  # doctest: +SKIP
mps2-an386: flash 52344 / 1048576 B (5.0%), SRAM 40960 / 262144 B (15.6%)
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, TypedDict, Unpack

from ..facts.errors import BuildStepError
from ..facts.boards import Board, board_names, load_board
from ..facts.manifests import image_sources
from ..facts.paths import BOARDS, BUILD, FIRMWARE, ROOT
from . import third_party

DEFAULT_CACHE_DIR = BUILD / ".objcache"
CROSS_PREFIX = "arm-none-eabi-"
JOBS = 2

COMMON_CFLAGS: tuple[str, ...] = (
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-g",
    "-ffunction-sections",
    "-fdata-sections",
    "-fno-common",
)
COMMON_LDFLAGS: tuple[str, ...] = (
    "--specs=nano.specs",
    "--specs=nosys.specs",
    "-nostartfiles",
    "-Wl,--gc-sections",
    "-Wl,--no-warn-rwx-segments",
)


class BuildError(BuildStepError, RuntimeError):
    """A compile or link step failed; the message carries the tool's output."""


class LinkOverflowError(BuildError):
    """The image does not fit the board's flash or SRAM (linker ASSERT)."""


@dataclass(frozen=True)
class BuildPlan:
    """Everything needed to compile and link one image (no side effects but
    the generated seed file)."""

    board: Board
    sources: tuple[Path, ...]
    include_dirs: tuple[Path, ...]
    defines: dict[str, str]
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    linker_script: Path
    linker_dirs: tuple[Path, ...]
    # Third-party sources (Monocypher) and their flags: same CPU / -O / section
    # flags as cflags, without the project's -Wall -Wextra -Werror.
    third_party_sources: frozenset[Path] = frozenset()
    third_party_cflags: tuple[str, ...] = ()

    def cflags_for(self, source: Path) -> tuple[str, ...]:
        """Compiler flags of one source (third-party code gets relaxed warnings)."""
        return self.third_party_cflags if Path(source) in self.third_party_sources else self.cflags

    def compile_argv(self, source: Path, obj: Path, cc: str) -> list[str]:
        return [
            cc,
            *self.cflags_for(source),
            *(f"-D{k}={v}" for k, v in sorted(self.defines.items())),
            *(f"-I{d}" for d in self.include_dirs),
            "-c",
            str(source),
            "-o",
            str(obj),
        ]


@dataclass(frozen=True)
class ImageInfo:
    """A linked image and what it takes of the chip."""

    board: str
    elf: Path
    bin: Path
    map: Path
    flash_used: int
    flash_size: int
    ram_used: int
    ram_size: int
    stack_size: int
    storage_size: int
    sections: dict[str, int] = field(default_factory=dict)

    def statement(self) -> str:
        return (
            f"{self.board}: flash {self.flash_used} / {self.flash_size} B "
            f"({100.0 * self.flash_used / self.flash_size:.1f}%), "
            f"SRAM {self.ram_used} / {self.ram_size} B "
            f"({100.0 * self.ram_used / self.ram_size:.1f}%)"
        )


def _tool(name: str) -> str:
    path = shutil.which(CROSS_PREFIX + name)
    if path is None:
        raise BuildError(
            f"{CROSS_PREFIX}{name} not found: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
        )
    return path


def _app_source(app: str | Path) -> Path:
    candidate = Path(app)
    if candidate.suffix == ".c" or "/" in str(app):
        if not candidate.is_absolute():
            candidate = (ROOT / candidate) if not candidate.exists() else candidate.resolve()
        if not candidate.is_file():
            raise BuildError(f"app source {candidate} does not exist")
        return candidate
    source = FIRMWARE / "src" / "app" / f"{app}.c"
    if not source.is_file():
        have = sorted(p.stem for p in (FIRMWARE / "src" / "app").glob("*.c"))
        raise BuildError(f"no app {app!r} ({source}); apps: {', '.join(have) or 'none'}")
    return source


def write_image_seed(gen_dir: Path, seed: bytes | None = None) -> Path:
    """Write ``image_seed.c`` (the per-image RNG seed of emulated boards).

    Reuses an existing seed in ``gen_dir`` unless ``seed`` is given, so
    rebuilding one output directory keeps its seed (and its cached objects).
    """
    gen_dir.mkdir(parents=True, exist_ok=True)
    path = gen_dir / "image_seed.c"
    if seed is None and path.is_file():
        return path
    if seed is None:
        seed = secrets.token_bytes(32)
    if len(seed) != 32:
        raise ValueError("the image seed must be 32 bytes")
    body = ", ".join(f"0x{b:02x}" for b in seed)
    text = (
        "/* generated by tinyfed toolchain/image/firmware.py -- do not edit.\n"
        " * Per-image seed of the emulated boards' random source (NOT a secure RNG:\n"
        " * see boards/common/emu/emu_random.h). */\n"
        "#include <stdint.h>\n\n"
        "extern const uint8_t tfd_image_seed[32];\n"
        f"const uint8_t tfd_image_seed[32] = {{{body}}};\n"
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


class ImageOptions(TypedDict, total=False):
    """What an image is built from besides board and model: the keyword options
    of :func:`plan_build` (defaults there), which :func:`build_image` forwards.

    Attributes
    ----------
    app
        ``firmware/src/app/<app>.c`` by name, or a path to a ``.c`` file ("main").
    extra_sources, defines
        More sources to compile; more ``-D`` defines for every source.
    ram_kb, flash_kb, stack_kb, storage_kb
        Override the chip's SRAM / flash / stack / persistent-storage reserve
        (default: board.json; storage is resizable on emulated boards only).
    opt
        Optimisation flag ("-Os").
    runtime
        Include ``firmware/src`` (False for board self-test images).
    seed
        32-byte per-image RNG seed (emulated boards); random if not given and
        none exists in ``out_dir/gen``.
    kernels
        Kernel variant ("dsp" or "reference"); default: the board's (board.json).
    """

    app: str | Path
    extra_sources: Iterable[Path]
    defines: Mapping[str, str | int] | None
    ram_kb: int | None
    flash_kb: int | None
    stack_kb: int | None
    storage_kb: int | None
    opt: str
    runtime: bool
    seed: bytes | None
    kernels: str | None


def plan_build(
    board: str,
    model_dir: Path | None,
    out_dir: Path,
    *,
    app: str | Path = "main",
    extra_sources: Iterable[Path] = (),
    defines: Mapping[str, str | int] | None = None,
    ram_kb: int | None = None,
    flash_kb: int | None = None,
    stack_kb: int | None = None,
    storage_kb: int | None = None,
    opt: str = "-Os",
    runtime: bool = True,
    seed: bytes | None = None,
    kernels: str | None = None,
) -> BuildPlan:
    """Decide sources and flags for an image (see the module docstring).

    ``runtime=False`` leaves out ``firmware/src`` (board self-test images).
    ``model_dir=None`` builds without a model (such apps must not use one).
    """
    b = load_board(board)
    out_dir = Path(out_dir)
    gen_dir = out_dir / "gen"
    seed_file = write_image_seed(gen_dir, seed)

    board_dirs = [BOARDS / "common"]
    board_dirs += [BOARDS / d for d in b.spec.get("source_dirs", [])]
    board_dirs.append(b.path)

    sources: list[Path] = []
    if runtime:
        sources += image_sources()
    sources.append(_app_source(app))
    for d in board_dirs:
        sources += sorted(d.glob("*.c"))
    if model_dir is not None:
        model_dir = Path(model_dir).resolve()
        if not model_dir.is_dir():
            raise BuildError(f"model directory {model_dir} does not exist (run the emitter first)")
        sources += sorted(model_dir.glob("*.c"))
    sources += [Path(s).resolve() for s in extra_sources]
    sources.append(seed_file)
    try:
        third = [Path(p) for p in third_party.monocypher_sources()]
    except third_party.ThirdPartyError as exc:
        raise BuildError(str(exc)) from exc
    sources += third

    include_dirs = [FIRMWARE / "include"]
    if model_dir is not None:
        include_dirs.append(model_dir)
    include_dirs += board_dirs
    include_dirs.append(gen_dir)
    include_dirs += sorted({p.parent for p in third})

    all_defines = b.defines(kernels)
    # Monocypher: BLAKE2b rounds as a loop, not unrolled (15 KB -> ~1 KB of
    # flash at -Os; a define for every source so the PlatformIO builder,
    # which passes one set of flags, compiles the same code).
    all_defines["BLAKE2_NO_UNROLLING"] = "1"
    for k, v in (defines or {}).items():
        all_defines[str(k)] = str(v)

    ldflags = list(COMMON_LDFLAGS)
    if ram_kb is not None:
        ldflags.append(f"-Wl,--defsym=TFD_RAM_SIZE={int(ram_kb) * 1024}")
    if flash_kb is not None:
        ldflags.append(f"-Wl,--defsym=TFD_FLASH_SIZE={int(flash_kb) * 1024}")
    if stack_kb is not None:
        ldflags.append(f"-Wl,--defsym=TFD_STACK_SIZE={int(stack_kb) * 1024}")
    if storage_kb is not None:
        ldflags.append(f"-Wl,--defsym=TFD_STORAGE_SIZE={int(storage_kb) * 1024}")

    seen: set[Path] = set()
    unique_sources = [s for s in sources if not (s in seen or seen.add(s))]
    return BuildPlan(
        board=b,
        sources=tuple(unique_sources),
        include_dirs=tuple(include_dirs),
        defines=all_defines,
        cflags=(*b.cpu_flags, opt, *COMMON_CFLAGS),
        ldflags=tuple(ldflags),
        linker_script=b.path / b.spec.get("linker_script", "link.ld"),
        linker_dirs=(BOARDS / "common" / "link", b.path),
        third_party_sources=frozenset(third),
        third_party_cflags=(*b.cpu_flags, opt, *third_party.THIRD_PARTY_CFLAGS),
    )


def _run(argv: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed ({proc.returncode}):\n{proc.stderr.strip()}\n$ {' '.join(argv)}")
    return proc


def _compile_cached(plan: BuildPlan, source: Path, cc: str, cache_dir: Path) -> Path:
    """Compile one source, reusing a cached object with the same content key."""
    argv = plan.compile_argv(source, Path("OBJ"), cc)
    pre = subprocess.run(
        [a for a in argv if a not in ("-c", "-o", "OBJ")] + ["-E"], capture_output=True
    )
    if pre.returncode != 0:
        raise BuildError(
            f"preprocessing {source} failed:\n{pre.stderr.decode(errors='replace').strip()}"
        )
    # -D and -I only act through the preprocessor, whose output is in the key: leaving
    # them out lets boards with the same CPU flags share the objects of every source
    # that does not read a board define (firmware/src, Monocypher, the model).
    flags = [a for a in argv if not a.startswith(("-D", "-I"))]
    key = hashlib.sha256("\0".join(flags).encode() + b"\0" + pre.stdout).hexdigest()
    obj = cache_dir / key[:2] / f"{key}.o"
    if obj.is_file():
        return obj
    obj.parent.mkdir(parents=True, exist_ok=True)
    tmp = obj.with_name(f"{key}.{os.getpid()}.{secrets.token_hex(4)}.tmp.o")
    try:
        _run(plan.compile_argv(source, tmp, cc), f"compiling {source}")
        os.replace(tmp, obj)
    finally:
        tmp.unlink(missing_ok=True)
    return obj


_OVERFLOW_RE = re.compile(r"tinyfed: [^\n]*|region `[^']+' overflowed by \d+ bytes|will not fit in region `[^']+'")


def _link(plan: BuildPlan, objs: Sequence[Path], elf: Path, map_file: Path, cc: str) -> None:
    argv = [
        cc,
        *plan.board.cpu_flags,
        *(f"-L{d}" for d in plan.linker_dirs),
        f"-T{plan.linker_script}",
        *plan.ldflags,
        f"-Wl,-Map={map_file}",
        *(str(o) for o in objs),
        "-lm",
        "-o",
        str(elf),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode == 0:
        return
    found = _OVERFLOW_RE.findall(proc.stderr)
    if found:
        unique = list(dict.fromkeys(found))
        raise LinkOverflowError(
            f"{plan.board.name}: the image does not fit the chip's memory:\n  "
            + "\n  ".join(unique)
            + f"\n(linker flags: {' '.join(plan.ldflags)})"
        )
    raise BuildError(f"linking {elf.name} failed:\n{proc.stderr.strip()}")


def _symbols(elf: Path) -> dict[str, int]:
    out = _run([_tool("nm"), str(elf)], "nm").stdout
    syms: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].startswith("__tfd_"):
            syms[parts[2]] = int(parts[0], 16)
    return syms


def _sections(elf: Path) -> dict[str, int]:
    out = _run([_tool("size"), "-A", str(elf)], "size").stdout
    sections: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    return sections


def measure(board: str, elf: Path) -> ImageInfo:
    """Flash and SRAM taken by a linked image (from the linker's symbols,
    cross-checked against the section sizes)."""
    syms = _symbols(elf)
    sections = _sections(elf)
    flash_used = sum(
        sections.get(s, 0)
        for s in (".isr_vector", ".text", ".rodata", ".ARM.extab", ".ARM.exidx",
                  ".preinit_array", ".init_array", ".fini_array", ".data")
    )
    ram_used = sum(sections.get(s, 0) for s in (".stack", ".data", ".bss"))
    if abs(flash_used - syms["__tfd_flash_used"]) > 64 or abs(ram_used - syms["__tfd_ram_used"]) > 64:
        raise BuildError(
            f"{elf}: section sizes (flash {flash_used}, ram {ram_used}) disagree with the linker "
            f"symbols ({syms['__tfd_flash_used']}, {syms['__tfd_ram_used']})"
        )
    return ImageInfo(
        board=board,
        elf=elf,
        bin=elf.with_suffix(".bin"),
        map=elf.with_suffix(".map"),
        flash_used=syms["__tfd_flash_used"],
        flash_size=syms["__tfd_flash_size"],
        ram_used=syms["__tfd_ram_used"],
        ram_size=syms["__tfd_ram_size"],
        stack_size=syms["__tfd_stack_size"],
        storage_size=syms["__tfd_storage_size"],
        sections=sections,
    )


def build_image(
    board: str,
    model_dir: Path | None,
    out_dir: Path,
    *,
    name: str = "firmware",
    cache_dir: Path | None = None,
    jobs: int = JOBS,
    quiet: bool = False,
    **options: Unpack[ImageOptions],
) -> ImageInfo:
    """Cross-compile and link an image; return its paths and memory use.

    Parameters
    ----------
    board
        A folder under ``boards/`` (``board_names()``).
    model_dir
        Directory of generated model C (``model_data.c`` defining ``tfd_model``),
        or None for images without a model.
    out_dir
        Where ``<name>.elf``, ``.bin``, ``.map`` and ``gen/`` go.
    options
        :class:`ImageOptions` (app, extra sources, defines, memory overrides,
        optimisation, runtime, seed), passed to :func:`plan_build`.

    Raises
    ------
    LinkOverflowError
        The image exceeds flash or SRAM; the message quotes the linker.
    BuildError
        Any other compile or link failure.
    """
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_build(board, model_dir, out_dir, **options)
    cc = _tool("gcc")
    cache = Path(os.environ.get("TINYFED_OBJ_CACHE", cache_dir or DEFAULT_CACHE_DIR))
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        objs = list(pool.map(lambda s: _compile_cached(plan, s, cc, cache), plan.sources))

    elf = out_dir / f"{name}.elf"
    map_file = out_dir / f"{name}.map"
    link_key = hashlib.sha256(
        "\0".join([*map(str, objs), *plan.ldflags, *plan.board.cpu_flags,
                   plan.linker_script.read_text(),
                   (BOARDS / "common" / "link" / "sections.ld").read_text()]).encode()
    ).hexdigest()
    key_file = out_dir / f".{name}.linkkey"
    if not (elf.is_file() and key_file.is_file() and key_file.read_text() == link_key):
        key_file.unlink(missing_ok=True)
        _link(plan, objs, elf, map_file, cc)
        _run([_tool("objcopy"), "-O", "binary", str(elf), str(elf.with_suffix(".bin"))], "objcopy")
        key_file.write_text(link_key)
    info = measure(board, elf)
    if not quiet:
        print(info.statement(), file=sys.stderr)
    return info


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tinyfed_toolchain.image.firmware BOARD MODEL_DIR OUT_DIR [--app A]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("board", choices=board_names())
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--app", default="main")
    parser.add_argument("--ram-kb", type=int)
    parser.add_argument("--flash-kb", type=int)
    parser.add_argument("--opt", default="-Os")
    args = parser.parse_args(argv)
    try:
        info = build_image(args.board, args.model_dir, args.out_dir, app=args.app,
                           ram_kb=args.ram_kb, flash_kb=args.flash_kb, opt=args.opt, quiet=True)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(info.statement())
    print(info.elf)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
