"""tinyfed's runtime vs TFLite Micro's reference kernels on the same model and core.

For each int8 ``.tflite`` this builds two images for one emulated board
(default ``mps2-an386``, Cortex-M4F), runs both under QEMU ``-icount`` on the
same inputs and prints instructions per inference, arena and flash:

(a) **tinyfed**: ``toolchain.plan.plan_model`` + ``toolchain.emit_c.emit_model``,
    then ``toolchain.firmware.build_image`` with the ``bench_infer`` app;
(b) **TFLM**: TFLM's ``MicroInterpreter`` + a ``MicroMutableOpResolver`` holding
    just the model's ops (TFLM's reference kernels), compiled from the user's
    tflite-micro checkout with ``arm-none-eabi-g++`` for the same core, linked
    with the same board support (``boards/common``, ``boards/<board>``) and
    timed with the same SysTick counter (``boards/common/bench_counter.h``).
    Our glue is ``bench/tflm_port/``; TFLM's source is never copied.

Both images read the same generated ``bench_inputs.h``.  The bench checks that
the TFLM image's output bytes equal the host tflite-micro runtime's, and that
tinyfed's output checksum (``bench_infer``: c = c*31 + byte over every run)
equals the checksum of those bytes, so both runtimes computed the same outputs.

Figures are INSTRUCTION counts under QEMU ``-icount`` (see bench/icount.py),
not cycles.

Usage::

    python bench/tflm_compare.py --tflm-src PATH/tflite-micro [MODEL.tflite ...]
        [--flatbuffers-include DIR] [--gemmlowp-include DIR] [--ruy-include DIR]
        [--board mps2-an386] [--runs 8] [--shift 6]
        [--tflm-kernel-opt Os|O2] [--tflm-core-opt Os] [--json OUT.json]

Without models it takes ``build/model*/model.tflite`` (``tinyfed build``), or
else builds two small representative students (untrained weights: timing
only) into ``build/bench-tflm/models/``.

TFLM's third-party headers: flatbuffers at the exact version TFLM's
``schema_generated.h`` asserts (Debian's libflatbuffers-dev is too old) —
found in ``--flatbuffers-include``, in the checkout's
``tensorflow/lite/micro/tools/make/downloads/flatbuffers/include`` (made by
TFLM's ``make ... third_party_downloads``) or in /usr/include; gemmlowp's
``fixedpoint/`` from ``--gemmlowp-include``, the checkout's downloads,
Debian's ``libgemmlowp-dev`` (/usr/include/gemmlowp) or the TensorFlow wheel;
ruy only for an empty profiler label (a stand-in in bench/tflm_port/shim is
used unless ``--ruy-include`` or the checkout's downloads have it).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a script from a checkout
    sys.path.insert(0, str(REPO_ROOT))
if str(REPO_ROOT / "bench") not in sys.path:  # bench_models, inference
    sys.path.insert(0, str(REPO_ROOT / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from tinyfed_host.emulator import run_to_exit  # noqa: E402
from tinyfed_toolchain.image.firmware import (  # noqa: E402
    COMMON_LDFLAGS,
    BuildError,
    ImageInfo,
    build_image,
    measure,
    plan_build,
)
from tinyfed_toolchain.facts.boards import load_board  # noqa: E402

PORT_DIR = REPO_ROOT / "bench" / "tflm_port"
BUILD_DIR = REPO_ROOT / "build" / "bench-tflm"
DEFAULT_SHIFT = 6
DEFAULT_RUNS = 8
JOBS = 2
_KV = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\S*)$")

#: TFLM sources the bench never compiles: tests, test/mock helpers, and the
#: platform files bench/tflm_port/tflm_platform.cc replaces.
_SKIP_CORE = {
    "debug_log.cc", "micro_time.cc", "system_setup.cc", "test_helpers.cc",
    "test_helper_custom_ops.cc", "fake_micro_context.cc", "mock_micro_graph.cc",
}
#: C++ flags of TFLM's own Makefile (COMMON_FLAGS + CXXFLAGS, BUILD_TYPE=release_with_logs)
#: plus ENVIRONMENT.md's bare-metal C++ flags.
TFLM_CXXFLAGS: tuple[str, ...] = (
    "-std=c++17", "-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics", "-fno-use-cxa-atexit",
    "-fno-unwind-tables", "-fno-asynchronous-unwind-tables", "-ffunction-sections", "-fdata-sections",
    "-fmessage-length=0", "-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON", "-DNDEBUG",
    "-DFLATBUFFERS_LOCALE_INDEPENDENT=0", "-Wall", "-Wno-unused-parameter",
)


class BenchError(RuntimeError):
    """The bench cannot run as asked; the message says what to do."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# TFLM checkout and its third-party headers


@dataclass(frozen=True)
class TflmTree:
    src: Path
    flatbuffers_include: Path
    gemmlowp_include: Path
    ruy_include: Path
    commit: str

    def include_flags(self) -> list[str]:
        return [f"-I{self.src}", f"-I{self.flatbuffers_include}", f"-I{self.gemmlowp_include}",
                f"-I{self.ruy_include}"]


def _flatbuffers_version(include: Path) -> tuple[int, int, int] | None:
    base = include / "flatbuffers" / "base.h"
    if not base.is_file():
        return None
    text = base.read_text(errors="replace")
    parts = []
    for what in ("MAJOR", "MINOR", "REVISION"):
        m = re.search(rf"#define\s+FLATBUFFERS_VERSION_{what}\s+(\d+)", text)
        if not m:
            return None
        parts.append(int(m.group(1)))
    return (parts[0], parts[1], parts[2])


def _required_flatbuffers(src: Path) -> tuple[int, int, int] | None:
    text = (src / "tensorflow/lite/schema/schema_generated.h").read_text(errors="replace")
    m = re.search(r"FLATBUFFERS_VERSION_MAJOR\s*==\s*(\d+)\s*&&\s*FLATBUFFERS_VERSION_MINOR\s*==\s*(\d+)"
                  r"\s*&&\s*FLATBUFFERS_VERSION_REVISION\s*==\s*(\d+)", text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def _tree_commit(src: Path, core: Sequence[Path]) -> str:
    """The checkout's commit (12 hex digits), or a hash of the ``core`` sources
    for an export without .git."""
    try:
        top = subprocess.run(["git", "-C", str(src), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=10)
        if top.returncode == 0 and Path(top.stdout.strip()).resolve() == src.resolve():
            out = subprocess.run(["git", "-C", str(src), "rev-parse", "--short=12", "HEAD"],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    # a `git archive` export has no .git: identify the tree by its core sources
    h = hashlib.sha256()
    for p in sorted(core):
        h.update(p.read_bytes())
    return "tree-" + h.hexdigest()[:12]


def _tflm_commit(src: Path) -> str:
    return _tree_commit(src, list((src / "tensorflow/lite/micro").glob("*.cc")))


def locate_tflm(src: Path | None, flatbuffers: Path | None = None, gemmlowp: Path | None = None,
                ruy: Path | None = None) -> TflmTree:
    """Check a tflite-micro checkout and find the headers it needs (see the module doc)."""
    if src is None:
        raise BenchError(
            "--tflm-src is required: a checkout of the tensorflow/tflite-micro repository "
            "(TFLM's C++ sources are in no package registry and are never copied into tinyfed).\n"
            "  git clone <tflite-micro repository> ~/tflite-micro\n"
            "  python bench/tflm_compare.py --tflm-src ~/tflite-micro")
    src = Path(src).expanduser().resolve()
    if not (src / "tensorflow/lite/micro/micro_interpreter.h").is_file():
        raise BenchError(f"--tflm-src {src} is not a tflite-micro checkout "
                         "(no tensorflow/lite/micro/micro_interpreter.h)")
    downloads = src / "tensorflow/lite/micro/tools/make/downloads"

    need = _required_flatbuffers(src)
    candidates = [Path(flatbuffers)] if flatbuffers else [downloads / "flatbuffers/include", Path("/usr/include")]
    found: list[str] = []
    fb_inc = None
    for c in candidates:
        v = _flatbuffers_version(c)
        if v is None:
            continue
        found.append(f"{c}: {'.'.join(map(str, v))}")
        if need is None or v == need:
            fb_inc = c
            break
    if fb_inc is not None and fb_inc.resolve() == Path("/usr/include"):
        # never put all of the host's /usr/include on a cross compiler's path
        stage = BUILD_DIR / "deps" / "flatbuffers-include"
        stage.mkdir(parents=True, exist_ok=True)
        link = stage / "flatbuffers"
        if not link.is_symlink():
            link.symlink_to(fb_inc / "flatbuffers")
        fb_inc = stage
    if fb_inc is None:
        want = ".".join(map(str, need)) if need else "?"
        raise BenchError(
            f"TFLM ({src}) needs flatbuffers headers version {want} (its schema_generated.h asserts it); "
            f"found: {'; '.join(found) or 'none'}. Debian's libflatbuffers-dev (2.0.8) is too old.\n"
            "Either run TFLM's own download step once in the checkout:\n"
            f"  make -C {src} -f tensorflow/lite/micro/tools/make/Makefile third_party_downloads\n"
            f"or check out the google/flatbuffers repository at tag v{want} and pass "
            "--flatbuffers-include CHECKOUT/include")

    gem_candidates = [Path(gemmlowp)] if gemmlowp else [downloads / "gemmlowp", Path("/usr/include/gemmlowp")]
    if not gemmlowp:
        spec = importlib.util.find_spec("tensorflow")
        if spec is not None and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                gem_candidates.append(Path(loc) / "include/external/gemmlowp")
    gem_inc = next((c for c in gem_candidates if (c / "fixedpoint/fixedpoint.h").is_file()), None)
    if gem_inc is None:
        raise BenchError(
            "gemmlowp's fixedpoint/fixedpoint.h not found (looked in "
            f"{', '.join(map(str, gem_candidates))}): apt-get install libgemmlowp-dev, "
            "or pass --gemmlowp-include DIR (the folder holding fixedpoint/)")

    ruy_candidates = [Path(ruy)] if ruy else [downloads / "ruy"]
    ruy_inc = next((c for c in ruy_candidates if (c / "ruy/profiler/instrumentation.h").is_file()), None)
    if ruy is not None and ruy_inc is None:
        raise BenchError(f"--ruy-include {ruy} has no ruy/profiler/instrumentation.h")
    if ruy_inc is None:
        ruy_inc = PORT_DIR / "shim"
    return TflmTree(src=src, flatbuffers_include=fb_inc, gemmlowp_include=gem_inc, ruy_include=ruy_inc,
                    commit=_tflm_commit(src))


@dataclass(frozen=True)
class CmsisNnTree:
    """A CMSIS-NN checkout (``Include/arm_nnfunctions.h``, ``Source/**/*.c``)."""

    src: Path
    commit: str

    def include_flags(self) -> list[str]:
        return [f"-I{self.src}", f"-I{self.src / 'Include'}"]

    def sources(self) -> list[Path]:
        """The C sources TFLM's ``ext_libs/cmsis_nn.inc`` compiles (int only:
        no ``*_f16.c``, ``*_f32.c``, ``arm_nntables_flt.c``)."""
        return sorted(p for p in (self.src / "Source").rglob("*.c")
                      if not p.name.endswith(("_f16.c", "_f32.c")) and p.name != "arm_nntables_flt.c")


#: What TFLM's Makefile adds for OPTIMIZED_KERNEL_DIR=cmsis_nn (ADDITIONAL_DEFINES
#: and ext_libs/cmsis_nn.inc, integer kernels only).
CMSIS_NN_DEFINES: tuple[str, ...] = (
    "-DCMSIS_NN", "-DKERNELS_OPTIMIZED_FOR_SPEED", "-DARM_NN_ENABLE_F16=0", "-DARM_NN_ENABLE_F32=0",
)


def locate_cmsis_nn(src: Path | None) -> CmsisNnTree | None:
    """Check a CMSIS-NN checkout (None: the bench runs without the CMSIS-NN column)."""
    if src is None:
        return None
    src = Path(src).expanduser().resolve()
    if not (src / "Include/arm_nnfunctions.h").is_file() or not (src / "Source").is_dir():
        raise BenchError(f"--cmsis-nn-src {src} is not a CMSIS-NN checkout (no Include/arm_nnfunctions.h); "
                         "TFLM pins the commit in tensorflow/lite/micro/tools/make/ext_libs/"
                         "cmsis_nn_download.sh (ZIP_PREFIX_NN)")
    return CmsisNnTree(src=src, commit=_tree_commit(src, list((src / "Source").rglob("*.c"))))


# --------------------------------------------------------------------------
# ops: builtin name -> resolver method -> kernel sources


@dataclass(frozen=True)
class ResolverOp:
    builtin: str  # "CONV_2D"
    method: str  # "AddConv2D"
    register: str  # "Register_CONV_2D"


def resolver_ops(tree: TflmTree) -> dict[str, ResolverOp]:
    """Builtin ops MicroMutableOpResolver knows, read from its header."""
    text = (tree.src / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    pat = re.compile(
        r"TfLiteStatus\s+(Add\w+)\s*\(\s*const\s+TFLMRegistration&\s*registration\s*=\s*"
        r"(?:tflite::)?(Register_\w+)\s*\(\s*\)\s*\)\s*\{\s*return\s+AddBuiltin\(\s*"
        r"(?:tflite::)?BuiltinOperator_(\w+)")
    return {m.group(3): ResolverOp(m.group(3), m.group(1), m.group(2)) for m in pat.finditer(text)}


def model_ops(tflite: bytes) -> list[str]:
    """Builtin op names of a .tflite in execution order (any op, supported or not)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
    model = fb.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    codes = []
    for oc in model.operatorCodes or []:
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        codes.append("CUSTOM" if oc.customCode else names.get(code, f"OP_{code}"))
    if len(model.subgraphs or []) != 1:
        raise BenchError(f"the bench handles single-subgraph models, this one has {len(model.subgraphs or [])}")
    return [codes[op.opcodeIndex] for op in model.subgraphs[0].operators or []]


def kernel_sources(tree: TflmTree, regs: Sequence[str], optimized_dir: str | None = None) -> list[Path]:
    """The kernel .cc files defining ``regs`` (``Register_X()``), their
    ``*_common.cc`` siblings and kernel_util.cc.  With ``optimized_dir``
    (``"cmsis_nn"``) a file of the same name in ``kernels/<optimized_dir>/``
    replaces the reference one, as TFLM's Makefile does (specialize_files.py)."""
    kdir = tree.src / "tensorflow/lite/micro/kernels"
    files = sorted(p for p in kdir.glob("*.cc") if not p.name.endswith("_test.cc"))
    texts = {p: p.read_text(errors="replace") for p in files}
    out: list[Path] = [kdir / "kernel_util.cc"]
    for reg in regs:
        pat = re.compile(rf"\b{re.escape(reg)}\s*\(\s*\)\s*\{{")
        hits = [p for p in files if pat.search(texts[p])]
        if not hits:
            raise BenchError(f"no TFLM kernel file defines {reg}() in {kdir}")
        for p in hits:
            special = kdir / optimized_dir / p.name if optimized_dir else None
            out.append(special if special is not None and special.is_file() else p)
            common = p.with_name(p.stem + "_common.cc")
            if common.is_file():
                out.append(common)
    return sorted(set(out))


def all_kernel_sources(tree: TflmTree) -> list[Path]:
    kdir = tree.src / "tensorflow/lite/micro/kernels"
    return sorted(p for p in kdir.glob("*.cc") if not p.name.endswith("_test.cc"))


def core_sources(tree: TflmTree) -> list[Path]:
    """TFLM's interpreter, allocator, planner, bridge and the shared TFLite
    sources (its Makefile's MICROLITE_CC_BASE_SRCS, without tests/platform)."""
    s = tree.src
    micro = s / "tensorflow/lite/micro"
    out = [p for p in micro.glob("*.cc") if not p.name.endswith("_test.cc") and p.name not in _SKIP_CORE]
    for sub in ("arena_allocator", "memory_planner", "tflite_bridge"):
        out += [p for p in (micro / sub).glob("*.cc") if not p.name.endswith("_test.cc")]
    for top in (s / "tensorflow/lite", s / "tensorflow/compiler"):
        for p in top.rglob("*.cc"):
            rel = p.relative_to(s).as_posix()
            if rel.startswith(("tensorflow/lite/micro/", "tensorflow/lite/experimental/")):
                continue
            if p.name.endswith("_test.cc") or rel == "tensorflow/lite/array.cc":
                continue
            out.append(p)
    return sorted(set(out))


# --------------------------------------------------------------------------
# compiling (content-addressed object cache) and linking


def _cross(tool: str) -> str:
    path = shutil.which("arm-none-eabi-" + tool)
    if path is None:
        raise BenchError(f"arm-none-eabi-{tool} not found: apt-get install gcc-arm-none-eabi "
                         "libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib")
    return path


def check_cross_cxx(board: str) -> None:
    """arm-none-eabi-g++ with the C++ library headers and nano libstdc++ for the board's core."""
    b = load_board(board)
    proc = subprocess.run([_cross("g++"), *b.cpu_flags, "-x", "c++", "-std=c++17", "-E", "-", "-o", os.devnull],
                          input="#include <cstdint>\n#include <cstring>\n", capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError("arm-none-eabi-g++ has no C++ library headers: apt-get install "
                         f"libstdc++-arm-none-eabi-newlib libstdc++-arm-none-eabi-dev\n{proc.stderr[-1000:]}")


def compile_cached(argv_head: Sequence[str], source: Path, cache: Path) -> tuple[Path, bool]:
    """Compile ``source`` with ``argv_head`` (compiler + flags); the object is
    keyed by the command and the preprocessed source.  Returns (object, compiled now)."""
    head = list(argv_head)
    pre = subprocess.run([*head, "-E", str(source)], capture_output=True)
    if pre.returncode != 0:
        raise BuildError(f"preprocessing {source} failed:\n{pre.stderr.decode(errors='replace')[-4000:]}")
    key = hashlib.sha256("\0".join(head).encode() + b"\0" + pre.stdout).hexdigest()
    obj = cache / key[:2] / f"{key}.o"
    if obj.is_file():
        return obj, False
    obj.parent.mkdir(parents=True, exist_ok=True)
    tmp = obj.with_name(f"{key}.{os.getpid()}.{secrets.token_hex(4)}.tmp.o")
    try:
        proc = subprocess.run([*head, "-c", str(source), "-o", str(tmp)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"compiling {source} failed:\n{proc.stderr[-4000:]}")
        os.replace(tmp, obj)
    finally:
        tmp.unlink(missing_ok=True)
    return obj, True


def compile_many(jobs: Sequence[tuple[Sequence[str], Path]], cache: Path, what: str | None) -> list[Path]:
    """Compile on JOBS threads; ``what`` names them in the log (None: quiet)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=JOBS) as pool:
        done = list(pool.map(lambda j: compile_cached(j[0], j[1], cache), jobs))
    fresh = sum(1 for _, new in done if new)
    if fresh and what:
        log(f"  compiled {fresh} of {len(jobs)} {what} (cached in {cache.relative_to(REPO_ROOT)})")
    return [obj for obj, _ in done]


@dataclass(frozen=True)
class TflmBuildConfig:
    board: str
    core_opt: str = "-Os"
    kernel_opt: str = "-Os"
    runs: int = DEFAULT_RUNS
    arena_bytes: int = 128 * 1024


class TflmImage:
    """The TFLM bench image of one model: ``prepare()`` compiles TFLM, the
    board support and our glue once; ``link(arena_bytes)`` then only compiles
    the generated arena file and links.  With ``cmsis`` the model's kernels
    are TFLM's CMSIS-NN ones (``kernels/cmsis_nn/*.cc`` over CMSIS-NN's C
    sources, compiled for the board's core) where TFLM has them, as
    ``make OPTIMIZED_KERNEL_DIR=cmsis_nn`` builds them."""

    def __init__(self, tree: TflmTree, cfg: TflmBuildConfig, tflite: bytes, name: str, ops: Sequence[str],
                 inputs_header: Path, out_dir: Path, cmsis: CmsisNnTree | None = None) -> None:
        self.tree, self.cfg, self.tflite, self.name = tree, cfg, tflite, name
        self.cmsis = cmsis
        self.ops = list(dict.fromkeys(ops))
        self.inputs_header = inputs_header
        self.out_dir = out_dir
        self.gen = out_dir / "gen"
        self.cache = BUILD_DIR / "objcache"
        self.plan: Any = None
        self.app_objs: list[Path] = []
        self.lib: Path | None = None

    def _head(self, opt: str, extra: Sequence[str] = ()) -> list[str]:
        b = load_board(self.cfg.board)
        cmsis = [*CMSIS_NN_DEFINES, *self.cmsis.include_flags()] if self.cmsis else []
        return [_cross("g++"), *b.cpu_flags, opt, *TFLM_CXXFLAGS, *cmsis, *self.tree.include_flags(), *extra]

    def prepare(self) -> None:
        table = resolver_ops(self.tree)
        missing = [op for op in self.ops if op not in table]
        if missing:
            raise BenchError(f"{self.name}: MicroMutableOpResolver has no Add method for {', '.join(missing)}")
        uniq = [table[op] for op in self.ops]
        in_bytes, out_bytes = _io_bytes(self.tflite)
        write_if_changed(self.gen / "tflm_bench_model.h", (
            "/* generated by bench/tflm_compare.py -- do not edit */\n"
            "#ifndef TFB_TFLM_BENCH_MODEL_H\n#define TFB_TFLM_BENCH_MODEL_H\n"
            f"#define TFB_MODEL_NAME \"{self.name}\"\n"
            f"#define TFB_OP_COUNT {len(uniq)}\n"
            "#define TFB_OPS(X) " + " ".join(f"X({u.method[3:]})" for u in uniq) + "\n"
            f"#define TFB_INPUT_BYTES {in_bytes}u\n#define TFB_OUTPUT_BYTES {out_bytes}u\n"
            "extern const unsigned char tfb_model_tflite[];\n"
            f"#define TFB_MODEL_TFLITE_BYTES {len(self.tflite)}u\n#endif\n"))
        t = self.tflite
        body = ",\n".join(", ".join(f"0x{b:02x}" for b in t[i:i + 16]) for i in range(0, len(t), 16))
        write_if_changed(self.gen / "tflm_model_data.cc", (
            "// generated by bench/tflm_compare.py -- do not edit\n"
            "#include \"tflm_bench_model.h\"\n"
            f"alignas(16) const unsigned char tfb_model_tflite[{len(t)}] = {{\n{body}\n}};\n"))

        core = [(self._head(self.cfg.core_opt), p) for p in core_sources(self.tree)]
        kernels = [(self._head(self.cfg.kernel_opt), p)
                   for p in kernel_sources(self.tree, [u.register for u in uniq],
                                           "cmsis_nn" if self.cmsis else None)]
        lib_objs = compile_many(core + kernels, self.cache, f"TFLM sources (TFLM {self.tree.commit})")
        if self.cmsis is not None:
            # CMSIS-NN's C with TFLM's C flags for third-party kernels (same
            # optimisation as TFLM's kernels here); --gc-sections keeps what is called.
            b = load_board(self.cfg.board)
            head = [_cross("gcc"), *b.cpu_flags, self.cfg.kernel_opt, "-std=c11", "-fno-unwind-tables",
                    "-fno-asynchronous-unwind-tables", "-ffunction-sections", "-fdata-sections",
                    "-fmessage-length=0", *CMSIS_NN_DEFINES, *self.cmsis.include_flags()]
            lib_objs += compile_many([(head, p) for p in self.cmsis.sources()], self.cache,
                                     f"CMSIS-NN sources (CMSIS-NN {self.cmsis.commit})")

        # Our glue: C with the board's build plan (the same flags as tinyfed's
        # images), C++ with TFLM's flags plus the board's defines.
        self.plan = plan_build(self.cfg.board, None, self.out_dir, app=PORT_DIR / "tflm_glue.c", runtime=False)
        gcc = _cross("gcc")
        c_jobs = [(self.plan.compile_argv(s, Path("X"), gcc)[:-4], s) for s in self.plan.sources]
        defines = [f"-D{k}={v}" for k, v in sorted(self.plan.defines.items())]
        glue = self._head(self.cfg.core_opt, [*defines, f"-DTFD_BENCH_RUNS={self.cfg.runs}", f"-I{PORT_DIR}",
                                              f"-I{self.gen}", f"-I{self.inputs_header.parent}"])
        cc_jobs = [(glue, PORT_DIR / "tflm_bench_main.cc"), (glue, PORT_DIR / "tflm_platform.cc"),
                   (glue, self.gen / "tflm_model_data.cc")]
        self.app_objs = compile_many(c_jobs + cc_jobs, self.cache, "board + glue sources")

        self.lib = self.out_dir / "libtflm_bench.a"
        self.lib.unlink(missing_ok=True)
        proc = subprocess.run([_cross("ar"), "rcs", str(self.lib), *map(str, lib_objs)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"ar failed:\n{proc.stderr}")

    def link(self, arena_bytes: int) -> ImageInfo:
        if self.plan is None or self.lib is None:
            self.prepare()
        assert self.plan is not None and self.lib is not None
        arena_c = self.gen / "tflm_arena.c"
        write_if_changed(arena_c, (
            "/* generated by bench/tflm_compare.py -- do not edit: the TFLM tensor arena */\n"
            "#include <stddef.h>\n#include <stdint.h>\n"
            f"__attribute__((aligned(16))) uint8_t tfb_arena[{arena_bytes}];\n"
            f"const size_t tfb_arena_bytes = {arena_bytes}u;\n"))
        (arena_obj,) = compile_many([(self.plan.compile_argv(arena_c, Path("X"), _cross("gcc"))[:-4], arena_c)],
                                    self.cache, None)
        elf = self.out_dir / "tflm_bench.elf"
        argv = [_cross("g++"), *self.plan.board.cpu_flags, *(f"-L{d}" for d in self.plan.linker_dirs),
                f"-T{self.plan.linker_script}", *COMMON_LDFLAGS, f"-Wl,-Map={self.out_dir / 'tflm_bench.map'}",
                *map(str, self.app_objs), str(arena_obj), str(self.lib), "-lm", "-o", str(elf)]
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            undefined = sorted(set(re.findall(r"undefined reference to `([^']+)'", proc.stderr)))
            if undefined:
                raise BuildError(f"linking the TFLM image: undefined {undefined[:12]}\n{proc.stderr[-3000:]}")
            raise BuildError(f"linking the TFLM image failed:\n{proc.stderr[-4000:]}")
        return measure(self.cfg.board, elf)


# --------------------------------------------------------------------------
# models and inputs


def _io_bytes(tflite: bytes) -> tuple[int, int]:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    sizes = {fb.TensorType.INT8: 1, fb.TensorType.UINT8: 1, fb.TensorType.INT16: 2,
             fb.TensorType.INT32: 4, fb.TensorType.FLOAT32: 4}
    model = fb.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    sg = model.subgraphs[0]

    def nbytes(i: int) -> int:
        t = sg.tensors[i]
        return int(np.prod([int(d) for d in t.shape])) * sizes[t.type]

    return nbytes(sg.inputs[0]), nbytes(sg.outputs[0])


def _input_shape(tflite: bytes) -> tuple[tuple[int, ...], str]:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    sg = model.subgraphs[0]
    t = sg.tensors[sg.inputs[0]]
    names = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_") and isinstance(v, int)}
    return tuple(int(d) for d in t.shape), names[t.type]


def bench_inputs(tflite: bytes, n: int, seed: int) -> np.ndarray:
    shape, dtype = _input_shape(tflite)
    if dtype != "INT8":
        raise BenchError(f"the bench feeds int8 inputs; this model's input is {dtype}")
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(n, *shape), dtype=np.int8)


def write_inputs_header(x: np.ndarray, path: Path) -> Path:
    """``bench_inputs.h`` as bench_infer.c reads it (also included by the TFLM image)."""
    rows = x.reshape(x.shape[0], -1)
    body = ",\n".join("    {" + ", ".join(str(int(v)) for v in r) + "}" for r in rows)
    write_if_changed(path, (
        "/* generated by bench/tflm_compare.py -- do not edit: the bench inputs of both images */\n"
        "#ifndef TFD_BENCH_INPUTS_H\n#define TFD_BENCH_INPUTS_H\n#include <stdint.h>\n"
        f"#define TFD_BENCH_N_INPUTS {rows.shape[0]}\n"
        f"static const int8_t tfd_bench_inputs[{rows.shape[0]}][{rows.shape[1]}] = {{\n{body}\n}};\n"
        "#endif\n"))
    return path


def default_models(log_fn: Any = log) -> list[Path]:
    """``build/model*/model.tflite`` from ``tinyfed build``, else two small
    representative students built here (cached)."""
    built = sorted(REPO_ROOT.glob("build/model*/model.tflite"))
    if built:
        return built
    out = BUILD_DIR / "models"
    wanted = {"digits_cnn": (8, 8, 1), "sensor_cnn": (100, 6)}
    paths = {name: out / f"{name}.tflite" for name in wanted}
    if all(p.is_file() for p in paths.values()):
        return list(paths.values())
    log_fn("  no build/model*/model.tflite: building two representative int8 students "
           f"(untrained, timing only) into {out.relative_to(REPO_ROOT)}")
    from tests.quantized_models import to_int8_tflite
    from tinyfed_toolchain.ml.models import build_student

    import keras

    out.mkdir(parents=True, exist_ok=True)
    classes = {"digits_cnn": 10, "sensor_cnn": 4}
    for name, shape in wanted.items():
        if paths[name].is_file():
            continue
        keras.utils.set_random_seed(0)
        model = build_student(shape, classes[name], batch_size=1, name=name)
        paths[name].write_bytes(to_int8_tflite(model, [shape], seed=0))
    return list(paths.values())


# --------------------------------------------------------------------------
# running


def parse_kv(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _KV.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def checksum(outputs: Sequence[bytes]) -> int:
    """bench_infer.c's output checksum: c = c*31 + byte (uint32) over every run."""
    c = 0
    for out in outputs:
        for b in out:
            c = (c * 31 + b) & 0xFFFFFFFF
    return c


def run_image(elf: Path, board: str, shift: int, timeout: float, runs: int,
              allow_error: str | None = None) -> dict[str, str]:
    """Run a bench image to its exit; its key=value log.  An ``error=`` equal
    to ``allow_error`` is returned (in the dict) instead of raised."""
    code, text = run_to_exit(elf, board, icount_shift=shift, timeout=timeout)
    kv = parse_kv(text)
    if allow_error is not None and kv.get("error") == allow_error:
        return kv
    if code != 0 or "error" in kv:
        raise BenchError(f"{elf.name} exited {code}:\n{text[-3000:]}")
    if kv.get("icount_shift") != str(shift):
        raise BenchError(f"{elf.name} did not receive the icount shift:\n{text[-2000:]}")
    if kv.get("runs") != str(runs) or kv.get("inputs") != str(runs):
        raise BenchError(f"{elf.name} ran {kv.get('runs')} inferences on {kv.get('inputs')} inputs, "
                         f"expected {runs} on {runs} (was bench_inputs.h rewritten meanwhile?)")
    return kv


def tflm_min_arena(img: "TflmImage", used: int, limit: int, shift: int, timeout: float
                   ) -> tuple[int, dict[str, str], ImageInfo]:
    """The smallest arena (16-byte steps) with which AllocateTensors succeeds:
    TFLM's planner needs scratch space beyond ``arena_used_bytes()`` while it
    plans.  Returns (arena bytes, that run's log, that image)."""
    runs = img.cfg.runs

    def attempt(n: int) -> tuple[dict[str, str], ImageInfo] | None:
        info = img.link(n)
        kv = run_image(info.elf, img.cfg.board, shift, timeout, runs, allow_error="AllocateTensors")
        return None if kv.get("error") == "AllocateTensors" else (kv, info)

    def up16(n: int) -> int:
        return (n + 15) // 16 * 16

    lo = up16(used) - 16  # assumed too small: below what TFLM reports it uses
    step = 16
    hit = None
    while hit is None:
        cand = min(up16(used) + step - 16, limit)
        got = attempt(cand)
        if got is not None:
            hit = (cand, got)
        elif cand >= limit:
            raise BenchError(f"{img.name}: AllocateTensors fails even with a {limit} B arena")
        else:
            lo, step = cand, step * 4
    hi, (kv, info) = hit
    while hi - lo > 16:
        mid = up16((lo + hi) // 2)
        if mid >= hi:
            mid = hi - 16
        if mid <= lo:
            break
        got = attempt(mid)
        if got is None:
            lo = mid
        else:
            hi, (kv, info) = mid, got
    info = img.link(hi)  # leave the chosen image on disk (the last attempt may have failed)
    return hi, kv, info


@dataclass
class Side:
    insns_mean: int | None = None
    insns_min: int | None = None
    insns_max: int | None = None
    arena_bytes: int | None = None
    flash_used: int | None = None
    ram_used: int | None = None
    checksum: int | None = None
    match_host: bool | None = None  # outputs == the host tflite-micro runtime's, every run
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


#: The runtimes a result compares, in table order: key -> label.
SIDES = {"tinyfed": "tinyfed", "tflm": "TFLM ref", "cmsis_nn": "TFLM+CMSIS-NN"}


@dataclass
class Result:
    model: str
    path: str
    ops: list[str]
    runs: int
    tinyfed: Side
    tflm: Side
    host_checksum: int
    cmsis_nn: Side | None = None  # None: run without --cmsis-nn-src

    def sides(self) -> dict[str, Side]:
        out = {"tinyfed": self.tinyfed, "tflm": self.tflm}
        if self.cmsis_nn is not None:
            out["cmsis_nn"] = self.cmsis_nn
        return out

    @property
    def outputs(self) -> str:
        """``identical`` when every runtime that ran gave the host tflite-micro
        runtime's output bytes on every run (TFLM images: the bytes; tinyfed:
        their checksum), else which differ."""
        checks = {SIDES[k]: sd.match_host for k, sd in self.sides().items()}
        if all(v is None for v in checks.values()):
            return "n/a"
        bad = [k for k, v in checks.items() if v is False]
        return "DIFFER: " + ", ".join(bad) if bad else "identical"

    def ratio_to(self, key: str) -> float | None:
        other = self.sides().get(key)
        a, b = self.tinyfed.insns_mean, other.insns_mean if other else None
        return a / b if a and b else None

    @property
    def ratio(self) -> float | None:
        return self.ratio_to("tflm")


def bench_tinyfed(name: str, tflite: bytes, x: np.ndarray, work: Path, cfg: TflmBuildConfig, shift: int,
                  timeout: float, host_checksum: int) -> tuple[Side, Path]:
    """tinyfed's bench_infer image of the model; returns (figures, bench_inputs.h)."""
    model_dir = work / "tinyfed" / "model_c"
    inputs_h = write_inputs_header(x, model_dir / "bench_inputs.h")
    try:
        from tinyfed_toolchain.compile.emit_c import emit_model
        from tinyfed_toolchain.compile.plan import plan_model
        from tinyfed_toolchain.compile.tflite_reader import read_tflite

        plan = plan_model(read_tflite(tflite), tflite)
        emit_model(plan, model_dir, name=name)
        log(f"[{name}] tinyfed: building bench_infer")
        info = build_image(cfg.board, model_dir, work / "tinyfed", app="bench_infer",
                           defines={"TFD_BENCH_RUNS": cfg.runs}, quiet=True, name="bench_infer")
        kv = run_image(info.elf, cfg.board, shift, timeout, cfg.runs)
        side = Side(insns_mean=int(kv["insns_mean"]), insns_min=int(kv["insns_min"]),
                    insns_max=int(kv["insns_max"]), arena_bytes=plan.arena_bytes,
                    flash_used=info.flash_used, ram_used=info.ram_used,
                    checksum=int(kv["output_checksum"]))
        side.match_host = side.checksum == host_checksum
    except Exception as exc:  # an unsupported op must not hide the TFLM figures
        side = Side(error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}")
        log(f"[{name}] tinyfed failed: {side.error}")
    return side, inputs_h


def bench_tflm(img: TflmImage, cfg: TflmBuildConfig, shift: int, timeout: float,
               host_bytes: Sequence[bytes]) -> Side:
    """One TFLM image: a run with a large arena gives arena_used_bytes(); then
    the smallest arena that works, whose image gives the SRAM figure."""
    name = img.name
    try:
        info = img.link(cfg.arena_bytes)
        kv = run_image(info.elf, cfg.board, shift, timeout, cfg.runs)
        used = int(kv["arena_used_bytes"])
        min_arena, kv2, info = tflm_min_arena(img, used, cfg.arena_bytes, shift, timeout)
        if kv2["output_checksum"] != kv["output_checksum"] or kv2["arena_used_bytes"] != kv["arena_used_bytes"]:
            raise BenchError(f"{name}: the TFLM image with a {min_arena} B arena behaved differently "
                             f"from the one with {cfg.arena_bytes} B")
        tflm_bytes = [bytes.fromhex(kv2[f"out{i}"]) for i in range(cfg.runs)]
        side = Side(insns_mean=int(kv2["insns_mean"]), insns_min=int(kv2["insns_min"]),
                    insns_max=int(kv2["insns_max"]), arena_bytes=used, flash_used=info.flash_used,
                    ram_used=info.ram_used, checksum=int(kv2["output_checksum"]),
                    extra={"setup_insns": int(kv2["setup_insns"]), "arena_min": min_arena,
                           "tflite_bytes": len(img.tflite),
                           "insns_mean_large_arena": int(kv["insns_mean"])})
        if checksum(tflm_bytes) != side.checksum:
            raise BenchError(f"{name}: the TFLM image's checksum disagrees with its own output bytes")
        side.match_host = tflm_bytes == list(host_bytes)
        if not side.match_host:
            diff = [max(abs(int(a) - int(b)) for a, b in zip(np.frombuffer(t, np.int8), np.frombuffer(h, np.int8)))
                    for t, h in zip(tflm_bytes, host_bytes)]
            side.extra["max_abs_diff_vs_host"] = max(diff)
    except Exception as exc:
        side = Side(error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}")
        log(f"[{name}] TFLM failed: {exc}")
    return side


def bench_model(path: Path, tree: TflmTree, cfg: TflmBuildConfig, shift: int, seed: int,
                timeout: float, cmsis: CmsisNnTree | None = None) -> Result:
    tflite = path.read_bytes()
    name = path.stem if path.stem != "model" else path.parent.name
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    ops = model_ops(tflite)
    work = BUILD_DIR / name
    x = bench_inputs(tflite, cfg.runs, seed)

    # the golden reference: the host tflite-micro runtime
    from tinyfed_toolchain.compile.tflm import run_tflm

    host_out = run_tflm(tflite, x)[0]
    host_bytes = [np.ascontiguousarray(host_out[i]).tobytes() for i in range(cfg.runs)]
    host_checksum = checksum([host_bytes[i % len(host_bytes)] for i in range(cfg.runs)])
    tinyfed, inputs_h = bench_tinyfed(name, tflite, x, work, cfg, shift, timeout, host_checksum)
    res = Result(model=name, path=str(path), ops=ops, runs=cfg.runs, tinyfed=tinyfed, tflm=Side(),
                 host_checksum=host_checksum)
    op_list = ", ".join(dict.fromkeys(ops))
    log(f"[{name}] TFLM: building the reference-kernel image ({op_list})")
    res.tflm = bench_tflm(TflmImage(tree, cfg, tflite, name, ops, inputs_h, work / "tflm"),
                          cfg, shift, timeout, host_bytes)
    if cmsis is not None:
        log(f"[{name}] TFLM+CMSIS-NN: building the image ({op_list})")
        res.cmsis_nn = bench_tflm(TflmImage(tree, cfg, tflite, name, ops, inputs_h, work / "tflm_cmsis_nn",
                                            cmsis=cmsis), cfg, shift, timeout, host_bytes)
    return res


# --------------------------------------------------------------------------
# report


def _fmt(v: int | None) -> str:
    return f"{v:,}" if v is not None else "n/a"


def _geomean(values: Sequence[float]) -> float | None:
    return float(np.exp(np.mean(np.log(values)))) if values else None


def table(results: Sequence[Result], board: str, shift: int, cfg: TflmBuildConfig, tree: TflmTree,
          cmsis: CmsisNnTree | None = None) -> str:
    keys = [k for k in SIDES if k != "cmsis_nn" or cmsis is not None]
    cols = ["model", "ops", "tinyfed insn/inf"]
    for k in keys[1:]:
        cols += [f"{SIDES[k]} insn/inf", f"tinyfed/{SIDES[k]}"]
    cols += [f"arena {' / '.join(SIDES[k] for k in keys)}", f"flash {' / '.join(SIDES[k] for k in keys)}",
             "outputs"]
    rows = []
    for r in results:
        sides = r.sides()
        row = [r.model, ",".join(_short(o) for o in r.ops), _fmt(r.tinyfed.insns_mean)]
        for k in keys[1:]:
            ratio = r.ratio_to(k)
            row += [_fmt(sides[k].insns_mean if k in sides else None), f"{ratio:.2f}x" if ratio else "n/a"]
        row += [" / ".join(_fmt(sides[k].arena_bytes if k in sides else None) for k in keys),
                " / ".join(_fmt(sides[k].flash_used if k in sides else None) for k in keys), r.outputs]
        rows.append(row)
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    kernels = "reference kernels" + (f" and with CMSIS-NN {cmsis.commit}" if cmsis else "")
    lines = [f"tinyfed vs TFLM ({kernels}) on {board}: INSTRUCTIONS per inference under QEMU "
             f"-icount shift={shift} (not cycles), mean of {cfg.runs} runs on the same {cfg.runs} random int8 inputs",
             f"TFLM {tree.commit} built with core {cfg.core_opt}, kernels {cfg.kernel_opt}"
             + (f" (CMSIS-NN C {cfg.kernel_opt})" if cmsis else "") + "; tinyfed -Os. "
             "Arena: tinyfed's plan; TFLM's arena_used_bytes() (the smallest arena AllocateTensors accepts "
             "is listed below). Flash: whole image (same board support).",
             "  ".join(c.ljust(w) for c, w in zip(cols, widths)),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    for k in keys[1:]:
        ratios = [x for x in (r.ratio_to(k) for r in results) if x]
        if ratios:
            lines.append(f"tinyfed / {SIDES[k]} instructions: geometric mean {_geomean(ratios):.3f}x, "
                         f"max {max(ratios):.3f}x, min {min(ratios):.3f}x over {len(ratios)} models")
    for r in results:
        for k, sd in r.sides().items():
            if sd.error:
                lines.append(f"  {r.model}: {SIDES[k]} failed: {sd.error}")
            if "max_abs_diff_vs_host" in sd.extra:
                lines.append(f"  {r.model}: {SIDES[k]} outputs differ from the host tflite-micro runtime by up "
                             f"to {sd.extra['max_abs_diff_vs_host']}")
            if k != "tinyfed" and sd.extra:
                lines.append(f"  {r.model}: {SIDES[k]} setup (GetModel + AllocateTensors) "
                             f"{sd.extra['setup_insns']:,} instructions, once; smallest arena "
                             f"{_fmt(sd.extra.get('arena_min'))} B; its .tflite is {sd.extra['tflite_bytes']:,} B "
                             f"of its flash; image SRAM (16 KiB stack + data + arena) {_fmt(sd.ram_used)} B "
                             f"with the smallest arena (tinyfed {_fmt(r.tinyfed.ram_used)} B)")
    return "\n".join(lines)


_SHORT = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "dwconv", "MAX_POOL_2D": "maxpool",
          "AVERAGE_POOL_2D": "avgpool", "FULLY_CONNECTED": "fc", "RESHAPE": "reshape", "SOFTMAX": "softmax",
          "MEAN": "mean", "LOGISTIC": "logistic", "QUANTIZE": "quant", "DEQUANTIZE": "dequant"}


def _short(op: str) -> str:
    return _SHORT.get(op, op.lower())


@contextlib.contextmanager
def _bench_lock() -> Iterator[None]:
    """One bench run at a time per build tree: runs share build/bench-tflm/<model>/
    (a second run would rewrite bench_inputs.h under the first one)."""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with open(BUILD_DIR / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another tflm_compare run ({BUILD_DIR / '.lock'})")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_text() == text:
        return
    path.write_text(text)


def _opt_flag(text: str) -> str:
    """``Os``/``-Os``/``O2``... -> ``-Os``/``-O2``."""
    flag = "-" + text.lstrip("-")
    if flag not in ("-O0", "-O1", "-O2", "-O3", "-Os", "-Oz"):
        raise argparse.ArgumentTypeError(f"{text!r} is not one of O0 O1 O2 O3 Os Oz")
    return flag


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", type=Path, help="int8 .tflite files (default: see --help text)")
    p.add_argument("--tflm-src", type=Path, default=os.environ.get("TFLM_SRC") or None,
                   help="a tflite-micro checkout (or $TFLM_SRC)")
    p.add_argument("--cmsis-nn-src", type=Path, default=os.environ.get("CMSIS_NN_SRC") or None,
                   help="a CMSIS-NN checkout (or $CMSIS_NN_SRC): adds TFLM built with CMSIS-NN")
    p.add_argument("--flatbuffers-include", type=Path)
    p.add_argument("--gemmlowp-include", type=Path)
    p.add_argument("--ruy-include", type=Path)
    p.add_argument("--suite", choices=("default", "representative"), default="default",
                   help="without MODELs: 'default' = build/model*/model.tflite or two untrained students; "
                        "'representative' = the trained digits and BasicMotions students + bench/bench_models.py")
    p.add_argument("--board", default="mps2-an386")
    p.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="inferences per image (distinct inputs)")
    p.add_argument("--shift", type=int, default=DEFAULT_SHIFT, help="QEMU -icount shift")
    p.add_argument("--seed", type=int, default=0, help="seed of the random int8 inputs")
    p.add_argument("--tflm-core-opt", default="-Os", type=_opt_flag,
                   help="optimisation of TFLM's interpreter/allocator (Os, like TFLM's Makefile)")
    p.add_argument("--tflm-kernel-opt", default="-Os", type=_opt_flag,
                   help="optimisation of TFLM's kernels: Os (like tinyfed's images; default) or O2 "
                        "(TFLM's Makefile default for kernels)")
    p.add_argument("--arena-kb", type=int, default=128, help="TFLM arena of the first (sizing) run")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per QEMU run")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    a = p.parse_args(argv)
    if a.runs < 1 or not (0 <= a.shift <= 10):
        p.error("--runs must be >= 1 and --shift in 0..10")
    try:
        tree = locate_tflm(a.tflm_src, a.flatbuffers_include, a.gemmlowp_include, a.ruy_include)
        log(f"TFLM {tree.src} ({tree.commit}); flatbuffers {tree.flatbuffers_include}; "
            f"gemmlowp {tree.gemmlowp_include}; ruy {tree.ruy_include}")
        cmsis = locate_cmsis_nn(a.cmsis_nn_src)
        if cmsis is not None:
            log(f"CMSIS-NN {cmsis.src} ({cmsis.commit})")
        check_cross_cxx(a.board)
        cfg = TflmBuildConfig(a.board, a.tflm_core_opt, a.tflm_kernel_opt, a.runs, a.arena_kb * 1024)
        if a.models:
            models = a.models
        elif a.suite == "representative":
            from bench_models import representative_models, student_models

            models = student_models() + representative_models()
        else:
            models = default_models()
        for m in models:
            if not m.is_file():
                raise BenchError(f"model {m} does not exist")
        with _bench_lock():
            results = [bench_model(m, tree, cfg, a.shift, a.seed, a.timeout, cmsis) for m in models]
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table(results, a.board, a.shift, cfg, tree, cmsis))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({
            "board": a.board, "shift": a.shift, "tflm_commit": tree.commit,
            "cmsis_nn_commit": cmsis.commit if cmsis else None, "config": asdict(cfg),
            "results": [{**asdict(r), "ratio": r.ratio, "ratio_cmsis_nn": r.ratio_to("cmsis_nn"),
                         "outputs": r.outputs} for r in results]}, indent=2) + "\n")
    bad = [r for r in results if any(sd.error for sd in r.sides().values()) or r.outputs.startswith("DIFFER")]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
