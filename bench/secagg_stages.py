"""Device cost of each SecAgg+ stage: instructions and SRAM of the C client on
an emulated Cortex-M (QEMU ``-icount``).

Builds ``bench/secagg_stages.c`` (no model: the secagg sources, Monocypher
and the board), which runs k + 1 real device clients through two rounds (no
dropout; then the highest id drops before MASKED_INPUT) and measures one of
them (id 7 for k = 4): per stage, its instructions (NOT cycles; see
``boards/common/bench_counter.h``), the stack it used below its caller
(painted, ``boards/common/stack_mark.h``) and the request / reply body bytes
(layouts: ``host/secagg/messages.py``).  The device also plays the server's
unmasking and checks the masks cancel to the exact sum of the survivors'
encodings; it logs ``error=...`` and this script exits 1 if anything failed.

The measured client's SRAM = ``sizeof(tfd_sa_client_t)`` (static, sized for
``TFD_SA_CLIENT_MAX_NEIGHBOURS``) + the deepest stage's stack + the largest
request and reply bodies (staged whole) + one masked-read chunk (the masked
vector itself is streamed, never buffered).  The image's flash / SRAM is the
bench image's: it holds all k + 1 clients and the check's buffers.

CLI::

    python bench/secagg_stages.py [--board mps2-an386] [--params 1000] [--neighbours 4]
                                  [--threshold 3] [--shift 6] [--chunk 16] [--ram-kb KB]
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

from tinyfed_host.emulator import run_to_exit  # noqa: E402
from tinyfed_toolchain.image.firmware import BuildError, ImageInfo, LinkOverflowError, build_image  # noqa: E402
from tinyfed_toolchain.facts.paths import FIRMWARE  # noqa: E402
from tinyfed_toolchain.facts.manifests import native, secagg_sources  # noqa: E402

APP = REPO_ROOT / "bench" / "secagg_stages.c"
BUILD_DIR = REPO_ROOT / "build" / "bench" / "secagg_stages"
DEFAULT_SHIFT = 6
MAX_NEIGHBOURS = 16  # TFD_SA_CLIENT_MAX_NEIGHBOURS (firmware/include/tfd/secagg_client.h)

STAGES = [  # (log key, label)
    ("advertise", "ADVERTISE_KEYS"),
    ("share_keys", "SHARE_KEYS"),
    ("masked_prepare", "MASKED_INPUT: prepare"),
    ("masked_stream", "MASKED_INPUT: stream vector"),
    ("survivors", "SURVIVORS"),
    ("unmask", "UNMASK"),
]
ROUNDS = {"drop": "one neighbour dropped before MASKED_INPUT", "nodrop": "no dropout"}


class StageBenchError(RuntimeError):
    """The bench image failed to build, run, or pass its own checks."""


@dataclass(frozen=True)
class Config:
    """What one bench image measures (compile-time defines of secagg_stages.c)."""

    board: str = "mps2-an386"
    neighbours: int = 4
    threshold: int = 3
    params: int = 1000
    chunk: int = 16
    ram_kb: int | None = None  # override the chip's SRAM (the bench's own buffers: ~12 B per parameter)

    def validate(self) -> None:
        if not 1 <= self.neighbours <= MAX_NEIGHBOURS:
            raise ValueError(f"--neighbours must be 1..{MAX_NEIGHBOURS} (TFD_SA_CLIENT_MAX_NEIGHBOURS)")
        if not 2 <= self.threshold <= self.neighbours:
            raise ValueError("--threshold must be 2..neighbours (the dropout round leaves k survivors)")
        if not 2 * self.threshold > self.neighbours + 1:
            raise ValueError(f"--threshold must be a strict majority of the {self.neighbours + 1} holders "
                             f"(device policy: >= {(self.neighbours + 1) // 2 + 1})")
        if self.params < 1 or self.chunk < 1:
            raise ValueError("--params and --chunk must be positive")

    @property
    def tag(self) -> str:
        ram = f"-r{self.ram_kb}" if self.ram_kb else ""
        return f"{self.board}-k{self.neighbours}-t{self.threshold}-n{self.params}-c{self.chunk}{ram}"


@dataclass(frozen=True)
class Stage:
    """One stage of the measured client."""

    key: str
    label: str
    insns: int
    stack: int
    req: int
    reply: int


def parse_kv(text: str) -> dict[str, str]:
    """``key=value`` lines of the device log."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def build(cfg: Config, app: Path = APP, build_dir: Path = BUILD_DIR) -> ImageInfo:
    """Cross-compile the bench image for ``cfg`` into ``build_dir / cfg.tag``."""
    cfg.validate()
    sources = secagg_sources() + [FIRMWARE / "src" / "runtime" / "status.c", native("fleet_maker")]
    defines = {"TFD_SAS_K": cfg.neighbours, "TFD_SAS_T": cfg.threshold, "TFD_SAS_N_PARAMS": cfg.params,
               "TFD_SAS_CHUNK": cfg.chunk}
    try:
        return build_image(cfg.board, None, Path(build_dir) / cfg.tag, app=app, runtime=False, extra_sources=sources,
                           defines=defines, ram_kb=cfg.ram_kb, name="secagg_stages", quiet=True)
    except LinkOverflowError as e:
        raise StageBenchError(f"the bench image does not fit ({cfg.tag}): it holds k + 1 clients and "
                              "~12 B per parameter of check buffers; use fewer --params or a larger --ram-kb "
                              f"(the emulated board has more; the client's own SRAM figure is unaffected):\n{e}") from e
    except BuildError as e:
        raise StageBenchError(f"build failed ({cfg.tag}): {e}") from e


def run(cfg: Config, shift: int | None = DEFAULT_SHIFT, timeout: float = 600.0, *, app: Path = APP,
        build_dir: Path = BUILD_DIR) -> tuple[dict[str, str], ImageInfo]:
    """Build and run the bench; returns its key=value log and the image info.

    Raises
    ------
    StageBenchError
        The build failed, the guest exited non-zero or did not log ``secagg_stages=ok``.
    """
    info = build(cfg, app, build_dir)
    code, text = run_to_exit(info.elf, cfg.board, icount_shift=shift, timeout=timeout)
    kv = parse_kv(text)
    if code != 0 or kv.get("secagg_stages") != "ok":
        why = f"error={kv['error']} status={kv.get('status')}" if "error" in kv else f"exit {code}"
        raise StageBenchError(f"secagg_stages on {cfg.board} failed ({why}):\n{text}")
    return kv, info


def stages(kv: dict[str, str], rnd: str = "drop") -> list[Stage]:
    """The measured client's stages of one round (``drop`` or ``nodrop``)."""
    return [Stage(k, label, *(int(kv[f"{rnd}_{k}_{f}"]) for f in ("insns", "stack", "req", "reply")))
            for k, label in STAGES]


@dataclass(frozen=True)
class MaskedCost:
    """MASKED_INPUT of the dropout round split into a fixed and a per-parameter part.

    ``norm_per_param`` comes from ``tfd_sa_encoder_init`` + the in-place encoding
    timed apart on the same update (the O(n) part of prepare: norm pass,
    clip/weight scaling and stochastic rounding, once), ``stream_per_word`` from
    the streamed reads (self mask and pair masks only); ``fixed`` = prepare minus
    that (the agreements)."""

    fixed: int
    norm_per_param: float
    stream_per_word: float

    @property
    def per_param(self) -> float:
        return self.norm_per_param + self.stream_per_word


def masked_cost(kv: dict[str, str], rnd: str = "drop") -> MaskedCost:
    n = int(kv["n_params"])
    d = {s.key: s for s in stages(kv, rnd)}
    enc = int(kv[f"{rnd}_encoder_init_insns"])
    return MaskedCost(fixed=d["masked_prepare"].insns - enc, norm_per_param=enc / n,
                      stream_per_word=d["masked_stream"].insns / (n + 1))


@dataclass(frozen=True)
class ClientSram:
    """SRAM the measured client needs, bytes."""

    state: int      # sizeof(tfd_sa_client_t)
    stack: int      # deepest stage
    request: int    # largest request body
    reply: int      # largest reply body staged whole (the masked vector is streamed)
    chunk: int      # one masked-read chunk

    @property
    def total(self) -> int:
        return self.state + self.stack + self.request + self.reply + self.chunk


def client_sram(kv: dict[str, str]) -> ClientSram:
    rows = stages(kv, "drop") + stages(kv, "nodrop")
    return ClientSram(state=int(kv["sizeof_client"]), stack=max(s.stack for s in rows),
                      request=max(s.req for s in rows),
                      reply=max(s.reply for s in rows if s.key != "masked_stream"),
                      chunk=4 * int(kv["chunk_words"]))


def _sa_body_max() -> int | None:
    try:
        from tinyfed_toolchain.facts.wire_table import parse_wire_def
        return int(parse_wire_def().consts["SA_BODY_MAX"])
    except Exception:  # noqa: BLE001 - an informative line only
        return None


def print_report(cfg: Config, kv: dict[str, str], info: ImageInfo, shift: int) -> None:
    n = int(kv["n_params"])
    print(f"{cfg.board}: SecAgg+ device client per stage, QEMU -icount shift={shift} "
          f"(instruction counts, not cycles); k={kv['k']} neighbours, t={kv['t']}, {n} params "
          f"(+ weight word), f={kv['frac_bits']}, masked vector streamed {kv['chunk_words']} words per read; "
          f"measured client id {kv['measured_id']}")
    print("device self-check passed: masks cancel to the exact sum of the survivors' encodings "
          "in both rounds")
    for rnd in ("drop", "nodrop"):
        rows = stages(kv, rnd)
        title = ROUNDS[rnd] + (f" (id {kv['dropped_id']})" if rnd == "drop" else "")
        print(f"\nround with {title}:")
        w = max(len(s.label) for s in rows) + 2
        print(f"  {'stage':<{w}} {'instructions':>13} {'stack peak B':>13} {'request B':>10} {'reply B':>9}")
        for s in rows:
            print(f"  {s.label:<{w}} {s.insns:>13,} {s.stack:>13,} {s.req:>10,} {s.reply:>9,}")
        mi = [s for s in rows if s.key.startswith("masked_")]
        total = sum(s.insns for s in rows)
        print(f"  {'MASKED_INPUT total':<{w}} {sum(s.insns for s in mi):>13,} {max(s.stack for s in mi):>13,} "
              f"{mi[0].req:>10,} {mi[1].reply:>9,}")
        print(f"  {'round total':<{w}} {total:>13,}")
    d = {s.key: s for s in stages(kv, "drop")}
    cost = masked_cost(kv)
    print(f"\nMASKED_INPUT = {cost.fixed:,} insns fixed ({kv['k']} X25519 agreements, KDFs, share bookkeeping) "
          f"+ {cost.per_param:,.1f} insns per parameter (norm pass + encoding, once, {cost.norm_per_param:,.1f} + "
          f"self mask and {kv['k']} pair masks {cost.stream_per_word:,.1f} per word); whole stage / n = "
          f"{(d['masked_prepare'].insns + d['masked_stream'].insns) / n:,.1f}")
    sram = client_sram(kv)
    print(f"client SRAM: sizeof(tfd_sa_client_t) {sram.state:,} B (TFD_SA_CLIENT_MAX_NEIGHBOURS="
          f"{kv['max_neighbours']}) + stack {sram.stack:,} B + largest request {sram.request:,} B "
          f"+ largest staged reply {sram.reply:,} B + read chunk {sram.chunk} B = {sram.total:,} B "
          f"(the update itself, {4 * n:,} B of float, is the trainer's)")
    body_max = _sa_body_max()
    if body_max is not None:
        fits = "fit" if max(sram.request, sram.reply) <= body_max else "DO NOT fit"
        print(f"  (firmware/src/fl/fl_device.c stages bodies in 2 x SA_BODY_MAX = {2 * body_max:,} B; "
              f"these bodies {fits})")
    if "sign_insns" in kv:  # device identity (issue 13): each timed apart from the stages
        print(f"identity: record check at boot {int(kv['identity_init_insns']):,} insns (length, order, fleet "
              f"signature over a {int(kv['identity_record_bytes']):,} B record, key pair from the seed); one "
              f"signature {int(kv['sign_insns']):,}, one verification {int(kv['verify_insns']):,}; "
              f"sizeof(tfd_identity_t) {int(kv['sizeof_identity']):,} B (the record stays in flash)")
    print(f"bench image (all {int(kv['k']) + 1} clients + check buffers): {info.statement()}"
          + (f" [--ram-kb {cfg.ram_kb}]" if cfg.ram_kb else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--board", default="mps2-an386", help="mps2-an386 (M4F), mps2-an500 (M7), mps2-an505 (M33)")
    parser.add_argument("--params", type=int, default=1000, help="parameters in the update")
    parser.add_argument("--neighbours", type=int, default=4, help="k: neighbours of the measured client")
    parser.add_argument("--threshold", type=int, default=3, help="t: Shamir threshold (2..k)")
    parser.add_argument("--chunk", type=int, default=16, help="masked words per tfd_sa_client_masked_read")
    parser.add_argument("--shift", type=int, default=DEFAULT_SHIFT, help="QEMU -icount shift")
    parser.add_argument("--ram-kb", type=int, default=None,
                        help="SRAM of the bench image (default: the board's); only for large --params")
    parser.add_argument("--timeout", type=float, default=600.0)
    a = parser.parse_args(argv)
    cfg = Config(a.board, a.neighbours, a.threshold, a.params, a.chunk, a.ram_kb)
    try:
        cfg.validate()
        kv, info = run(cfg, a.shift, a.timeout)
    except (ValueError, StageBenchError, TimeoutError) as e:
        print(f"secagg_stages: {e}", file=sys.stderr)
        return 1
    print_report(cfg, kv, info, a.shift)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
