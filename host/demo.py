"""`tinyfed demo`: the main job, end to end on emulated boards.

build (teacher → distilled int8 student → emitted C verified against
tflite-micro → on-device training plan) → N device images with non-IID
private shards → boot N QEMU boards (persistent storage on) → HELLO/INFO on
every board → federated rounds (FedAvg over serial: global parameters out,
local training on each board, model deltas back) → per-round table, the
centralised baseline, a JSON report and a PNG plot.

Aggregation is secure by default (SecAgg+: the host learns only the sum of the
boards' masked updates) and the images are then built secure-only (their plain
update path answers POLICY); ``--no-secure`` builds ordinary images and
aggregates plain deltas for comparison.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _secure_only(out: Path) -> bool:
    """Whether the build's images have no plain update path (build_report.json options)."""
    try:
        return bool(json.loads((out / "build_report.json").read_text())["options"].get("secure_only"))
    except (OSError, ValueError, KeyError):
        return False


def run(args: argparse.Namespace) -> int:
    from tinyfed_toolchain.build import BuildOptions, run_build

    from .commands import _fleet_config, print_secure_summary, secure_aggregator, state_path
    from .emulator import start_boards
    from .experiment import FlBuild
    from .fl_run import run_federated
    from .protocol import ClientOptions
    from .rounds import SerialParticipant

    t0 = time.monotonic()
    out = Path(args.build or f"build/demo-{Path(args.dataset).stem.lower()}")
    if args.quick and args.rounds is None:
        args.rounds = 4
    cfg = _fleet_config(args)
    print(f"== tinyfed demo: {args.dataset} on {args.boards} emulated {args.board} boards, "
          f"{cfg.rounds} federated rounds ==")
    if not (args.skip_build or args.resume):  # a resumed demo keeps the interrupted run's build
        run_build(BuildOptions(dataset=args.dataset, out_dir=out, board=args.board, devices=args.boards,
                               partition="dirichlet", quick=args.quick, train_scheme=args.train_scheme,
                               head_init=args.head_init, public_fraction=args.public_fraction,
                               # a secure demo flashes secure-only images: no plain update path at all
                               secure_only=not args.no_secure))
    build = FlBuild.load(out)
    if len(build.images) < args.boards:
        raise RuntimeError(f"{out}: {len(build.images)} device images for {args.boards} boards")
    print(f"\nmodel {build.model_name} ({build.model_hash.hex()}): {build.train_info.get('scheme')} trains "
          f"{build.train_info.get('n_params')} parameters on each board; shards "
          f"{', '.join(str(len(s[1])) for s in build.shards)} samples; held-out split {len(build.test_y)} samples")
    print("aggregation: " + ("plain FedAvg weighted by sample count (--no-secure: the host sees each delta)"
                             if args.no_secure else
                             f"SecAgg+ secure aggregation (clip {args.clip:g}), FedAvg weighted by sample count"
                             + ("; secure-only images (no plain update path)"
                                if _secure_only(out) else "")) + "\n")
    icount = args.icount if args.icount is not None and args.icount >= 0 else None
    boards = start_boards(args.boards, args.board, build.images[: args.boards], icount,
                          storage_dir=out / "storage", log_dir=out / "qemu")
    try:
        parts = [SerialParticipant(b.url, ClientOptions(timeout=3.0, retries=6), name=f"board{k}")
                 for k, b in enumerate(boards)]
        res = run_federated("demo", build, parts, cfg, aggregator=secure_aggregator(args, len(parts)),
                            report_path=Path(args.report or out / "demo_report.json"),
                            plot_path=Path(args.plot or out / "demo_accuracy.png"),
                            with_centralised=not args.no_centralised,
                            extra={"dataset": args.dataset, "board": args.board, "icount_shift": icount},
                            state_path=state_path(args, out, "demo"), resume=args.resume)
    finally:
        for b in boards:
            b.stop()
    print_secure_summary(res.records)
    last = res.records[-1]
    dev = [d for d in last.devices if d.train is not None]
    if dev:
        t = dev[0].train
        assert t is not None
        extra = f", {t.insns_per_sample:,} instructions per sample" if t.insns_per_sample else ""
        print(f"on-device training (board0, last round): {t.elapsed_ms} ms for {t.seen} samples, "
              f"training memory {t.train_mem_bytes:,} B, SRAM peak {t.sram_peak:,} B{extra}")
    print(f"\ndone in {time.monotonic() - t0:.0f} s")
    return 0
