"""Federated rounds through noisy serial links: time, retransmissions, exactness.

    .venv/bin/python bench/noisy_link.py [--ber 0,1e-5,1e-4,1e-3] [--boards 3] [--rounds 3]
        [--build DIR] [--no-secure] [--seed 1] [--json FILE]

Each of the --boards emulated boards (QEMU mps2-an386) sits behind its own
seeded fault proxy (host/faultproxy.py) that, in both directions, flips bits
with the given bit error rate (a byte is hit with probability 1 - (1 - BER)^8)
and drops bytes with probability --drop-ratio x BER (default 1: "BER 1e-4" is
1e-4 of the bits flipped plus 1e-4 of the bytes lost, the issue's noisy link).
The same federated run (secure aggregation by default) is repeated at every
BER on freshly booted boards; the table gives the wall time of the rounds, the
ratio to the clean run, what the links did (faults injected, frames the host
and the devices dropped, resends, timeouts) and whether the final global model
is the clean run's: bit for bit with --no-secure; with SecAgg+ within 1e-6 (the
devices' random stochastic rounding makes even two clean secure runs differ by
~1e-7).  A corrupt byte accepted anywhere -- parameters out, updates back,
SecAgg bodies -- would change it far more.

--build: a `tinyfed build` output with device images (default: a quick digits
build in build/bench-noisy, made on first use; its images have both the plain
and the secure update path, for --no-secure).
Exit status 1 if any run differs from the clean one or fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyfed_host.emulator import start_boards
from tinyfed_host.experiment import FlBuild
from tinyfed_host.faultproxy import FaultProxy, FaultSpec
from tinyfed_host.fl_client import TrainConfig
from tinyfed_host.protocol import ClientOptions
from tinyfed_host.rounds import FedAvgRunner, FleetConfig, SerialParticipant

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUILD = ROOT / "build" / "bench-noisy"
BOARD = "mps2-an386"
SECURE_TOLERANCE = 1e-6  # max |difference| two clean secure runs show is ~1.2e-7 (stochastic rounding)


@dataclass
class Outcome:
    ber: float
    seconds: float
    accuracy: float
    params: np.ndarray
    faults: int
    host_drops: int
    device_drops: int
    resends: int
    timeouts: int
    nacks: int
    wire_bytes: int
    rounds_ok: int
    updates: list[int]


def ensure_build(path: Path, boards: int) -> FlBuild:
    try:
        b = FlBuild.load(path)
        if len(b.images) >= boards:
            return b
    except Exception:
        pass
    from tinyfed_toolchain.build import BuildOptions, run_build

    print(f"[bench] building a quick digits model and {boards} device images into {path} ...", flush=True)
    run_build(BuildOptions(dataset="digits", out_dir=path, board=BOARD, devices=boards, quick=True),
              log=lambda s: None)
    return FlBuild.load(path)


def one_run(build: FlBuild, ber: float, a: argparse.Namespace, log_dir: Path) -> Outcome:
    spec = FaultSpec.from_ber(ber, drop=ber * a.drop_ratio)
    boards = start_boards(a.boards, BOARD, build.images[: a.boards], log_dir=log_dir)
    proxies: list[FaultProxy] = []
    parts: list[SerialParticipant] = []
    lines: list[str] = []
    try:
        for k, b in enumerate(boards):
            px = FaultProxy(("127.0.0.1", b.port), spec, seed=a.seed * 1000 + k)
            proxies.append(px)
            parts.append(SerialParticipant(px.url, ClientOptions(timeout=3.0, retries=6), name=f"board{k}"))
        agg = None
        if not a.no_secure:
            from tinyfed_host.secagg.aggregator import SecureAggregator, SecureOptions

            agg = SecureAggregator(SecureOptions(clip=1.0, neighbours=a.boards - 1, threshold=2, seed=a.seed,
                                                 fleet_size=a.boards), manifest=build.manifest)
        cfg = FleetConfig(updates=a.rounds, train=TrainConfig(lr=0.02, momentum=0.9, epochs=a.epochs, batch=8, seed=5),
                          train_timeout=600.0)
        runner = FedAvgRunner(parts, init_params=build.init_params(), model_hash=build.model_hash,
                              evaluator=build.evaluator(), config=cfg, aggregator=agg, log=lines.append)
        runner.setup()
        t0 = time.monotonic()
        recs = runner.run()
        dt = time.monotonic() - t0
        host_drops = resends = timeouts = nacks = wire = device_drops = 0
        for p in parts:
            if p.dev is None:
                continue
            c = p.dev.counters
            host_drops += p.dev.decoder.stats.dropped
            resends, timeouts, nacks = resends + c.resends, timeouts + c.timeouts, nacks + c.nacks
            wire += p.dev.link.counters.bytes_out + p.dev.link.counters.bytes_in
            try:
                s = p.dev.stats()
                device_drops += s["crc_errors"] + s["cobs_errors"] + s["runts"] + s["bad_header"] + s["oversize"]
            except Exception:
                pass
        params = runner.state.params.copy()
        runner.close()
        return Outcome(ber, dt, recs[-1].accuracy, params, sum(px.counters.faults for px in proxies), host_drops,
                       device_drops, resends, timeouts, nacks, wire, sum(1 for r in recs[1:] if r.completed),
                       [r.updates for r in recs[1:]])
    finally:
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / "run.log").write_text("\n".join(lines) + "\n")
        for p in parts:
            p.close()
        for px in proxies:
            px.close()
        for b in boards:
            b.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ber", default="0,1e-5,1e-4,1e-3", help="bit error rates, comma-separated (0 first)")
    ap.add_argument("--drop-ratio", type=float, default=1.0, help="dropped-byte probability = ratio x BER")
    ap.add_argument("--boards", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--build", type=Path, default=DEFAULT_BUILD)
    ap.add_argument("--no-secure", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    bers = [float(x) for x in a.ber.split(",")]
    if bers[0] != 0:
        bers.insert(0, 0.0)
    build = ensure_build(a.build, a.boards)
    print(f"{a.boards} x {BOARD} boards, {a.rounds} rounds of {a.epochs} epoch(s), "
          f"{'SecAgg+' if not a.no_secure else 'plain'} aggregation, model {build.model_name} "
          f"({int(build.train_info.get('n_params', 0)):,} trained parameters); each link: BER both ways "
          f"+ dropped bytes {a.drop_ratio:g} x BER", flush=True)
    head = (f"{'BER':>7} {'seconds':>8} {'x clean':>8} {'faults':>7} {'host drops':>10} {'dev drops':>9} "
            f"{'resends':>8} {'timeouts':>8} {'wire B':>9} {'accuracy':>8}  model")
    print(head, flush=True)
    out: list[Outcome] = []
    bad = 0
    for i, ber in enumerate(bers):
        try:
            o = one_run(build, ber, a, ROOT / "build" / "bench-noisy-logs" / f"{i}-ber{ber:g}")
        except Exception as e:  # a failed run is a result too
            print(f"{ber:>7g} failed: {type(e).__name__}: {e}", flush=True)
            bad += 1
            continue
        out.append(o)
        clean = out[0]
        diff = float(np.max(np.abs(o.params - clean.params))) if o.params.size else 0.0
        # plain FedAvg is bit-reproducible; SecAgg+ encodes with the devices' own random
        # stochastic rounding, so two runs (even two clean ones) differ by a few float32 ulps
        same = diff == 0.0 if a.no_secure else diff <= SECURE_TOLERANCE
        bad += int(not same or o.rounds_ok != a.rounds)
        print(f"{ber:>7g} {o.seconds:>8.1f} {o.seconds / clean.seconds:>8.2f} {o.faults:>7} {o.host_drops:>10} "
              f"{o.device_drops:>9} {o.resends:>8} {o.timeouts:>8} {o.wire_bytes:>9} {o.accuracy:>8.4f}  "
              f"{('identical' if diff == 0 else f'equal within rounding ({diff:.2g})') if same else 'DIFFERENT'}"
              + ("" if o.rounds_ok == a.rounds else f" ({o.rounds_ok} of {a.rounds} rounds completed)")
              + ("" if same else f" (max |diff| {np.max(np.abs(o.params - clean.params)):.3g}, "
                                 f"updates per round {o.updates} vs {clean.updates})"),
              flush=True)
    if a.json:
        a.json.write_text(json.dumps([{k: v for k, v in o.__dict__.items() if k != "params"} for o in out], indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
