"""Build and run the fuzz target of the SecAgg+ stage bodies and the device client
that decodes them (``firmware/native/fuzz_secagg.c``; what it checks is written there).

Two engines, one target:

* ``libfuzzer``: clang's coverage-guided libFuzzer with AddressSanitizer and
  UndefinedBehaviorSanitizer (Debian ``clang-14`` + ``libclang-rt-14-dev``);
* ``driver``: without clang, gcc with the same sanitizers and the target's own
  structured mutation driver (``-DTFD_FUZZ_DRIVER``).

Monocypher is compiled apart, optimised and uninstrumented: the target is
tinyfed's code.  ``tests/test_secagg_fuzz.py`` runs a short campaign in the
test suite, ``bench/secagg_fuzz.py`` one of >= 1 M inputs.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tinyfed_toolchain.facts.manifests import fuzz_secagg_sources, native
from tinyfed_toolchain.facts.paths import BUILD, FIRMWARE_INCLUDE
from tinyfed_toolchain.image.native_cc import CompileError
from tinyfed_toolchain.image.third_party import THIRD_PARTY_CFLAGS, monocypher_dir, monocypher_sources

TARGET = native("fuzz_secagg")
ENGINES = ("libfuzzer", "driver")
_SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]


@dataclass(frozen=True)
class FuzzBuild:
    exe: Path
    engine: str  # "libfuzzer" | "driver"
    compiler: str


@dataclass(frozen=True)
class FuzzResult:
    engine: str
    inputs: int          # inputs executed
    crashes: int         # sanitizer reports + invariant violations (the run stops at the first)
    seconds: float
    coverage: int | None  # libFuzzer: edges covered ("cov:"); None for the driver
    corpus: int | None    # libFuzzer: inputs kept in the corpus
    log: str

    @property
    def exec_per_s(self) -> float:
        return self.inputs / self.seconds if self.seconds > 0 else 0.0


def clang() -> str | None:
    """A clang with libFuzzer, or None."""
    for name in ("clang-14", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _key(files: list[Path], flags: list[str]) -> str:
    h = hashlib.blake2b(digest_size=10)
    for f in flags:
        h.update(f.encode() + b"\0")
    for p in sorted(set(files)):
        h.update(str(p).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def build_fuzzer(engine: str = "auto") -> FuzzBuild:
    """Compile the target (cached by content); ``auto``: libFuzzer when clang is there."""
    if engine not in ("auto", *ENGINES):
        raise ValueError(f"engine must be auto, libfuzzer or driver, not {engine!r}")
    cl = clang()
    if engine == "libfuzzer" and cl is None:
        raise CompileError("the libfuzzer engine needs clang (apt-get install clang-14 libclang-rt-14-dev)")
    eng = engine if engine != "auto" else ("libfuzzer" if cl else "driver")
    cc = cl if eng == "libfuzzer" else os.environ.get("CC", "gcc")
    assert cc is not None
    own = fuzz_secagg_sources()
    inc = FIRMWARE_INCLUDE
    headers = sorted(inc.rglob("*.h")) + sorted(inc.rglob("*.def"))
    flags = ["-std=c11", "-g", "-O1", *_SAN, "-Wall", "-Wextra", "-Werror"]
    flags += ["-fsanitize=fuzzer"] if eng == "libfuzzer" else ["-DTFD_FUZZ_DRIVER"]
    key = _key(own + monocypher_sources() + headers, [cc, *flags])
    out_dir = BUILD / "native-bin"
    out_dir.mkdir(parents=True, exist_ok=True)
    exe = out_dir / f"fuzz_secagg-{eng}-{key}"
    if exe.exists():
        return FuzzBuild(exe, eng, cc)
    with tempfile.TemporaryDirectory(prefix="tinyfed-fuzz-") as tmp:
        objs = []
        for i, src in enumerate(monocypher_sources()):
            obj = Path(tmp) / f"third{i}.o"
            cmd = [cc, *THIRD_PARTY_CFLAGS, "-O2", f"-I{src.parent}", "-c", str(src), "-o", str(obj)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise CompileError(f"fuzzer: compile of {src.name} failed ({cc}):\n{proc.stderr.strip()}")
            objs.append(obj)
        part = Path(tmp) / exe.name
        cmd = [cc, *flags, f"-I{inc}", f"-I{monocypher_dir()}", *map(str, own), *map(str, objs), "-o", str(part), "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CompileError(f"fuzzer: compile failed ({cc}):\n{proc.stderr.strip()}")
        shutil.move(str(part), exe)
    return FuzzBuild(exe, eng, cc)


def write_seeds(build: FuzzBuild, directory: Path) -> int:
    """The target's seed inputs (one valid request per stage, a whole round, raw bodies)."""
    directory.mkdir(parents=True, exist_ok=True)
    if build.engine == "libfuzzer":
        env = {**os.environ, "TFD_FUZZ_SEEDS": str(directory)}
        subprocess.run([str(build.exe), "-runs=0", str(directory)], env=env, capture_output=True, timeout=120)
    else:
        subprocess.run([str(build.exe), "seeds", str(directory)], check=True, capture_output=True, timeout=120)
    return len(list(directory.iterdir()))


def run_fuzzer(build: FuzzBuild, runs: int, *, seed: int = 1, workdir: Path | None = None,
               max_len: int = 8192, timeout: float = 3600.0) -> FuzzResult:
    """Run ``runs`` inputs; a finding stops the run (``crashes`` = 1, the log says what)."""
    if runs < 1:
        raise ValueError("runs must be >= 1")
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    with tempfile.TemporaryDirectory(prefix="tinyfed-fuzz-") as tmp:
        wd = Path(workdir) if workdir is not None else Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        if build.engine == "libfuzzer":
            corpus = wd / "corpus"
            write_seeds(build, corpus)
            cmd = [str(build.exe), f"-runs={runs}", f"-seed={seed}", f"-max_len={max_len}",
                   f"-artifact_prefix={wd}/", "-print_final_stats=1", str(corpus)]
        else:
            cmd = [str(build.exe), str(runs), str(seed)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=wd, timeout=timeout)
        seconds = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    crashed = proc.returncode != 0 or "ERROR: AddressSanitizer" in log or "runtime error:" in log \
        or "invariant violated" in log
    if build.engine == "libfuzzer":
        m = re.search(r"Done (\d+) runs", log)
        stat = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
        inputs = int(m.group(1)) if m else int(stat.group(1)) if stat else 0
        covs = re.findall(r"cov: (\d+)", log)
        corp = re.findall(r"corp: (\d+)/", log)
        return FuzzResult("libfuzzer", inputs, int(crashed), seconds, int(covs[-1]) if covs else None,
                          int(corp[-1]) if corp else None, log)
    m = re.search(r"inputs (\d+)", log)
    return FuzzResult("driver", int(m.group(1)) if m else 0, int(crashed), seconds, None, None, log)


__all__ = ["ENGINES", "FuzzBuild", "FuzzResult", "TARGET", "build_fuzzer", "clang", "run_fuzzer", "write_seeds"]
