"""`tinyfed demo`: the main job, end to end on emulated boards.

build (teacher → distilled int8 student → emitted C, verified against
tflite-micro) → N device images with non-IID private shards → boot N QEMU
boards → handshake, INFO and on-device EVAL on every board → report.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def run(args: argparse.Namespace) -> int:
    from tinyfed_toolchain.build import BuildOptions, run_build

    from .emulator import start_boards
    from .protocol import DeviceClient

    t0 = time.monotonic()
    out = Path(args.build)
    print(f"== tinyfed demo: {args.dataset} on {args.boards} emulated {args.board} boards ==")
    res = run_build(BuildOptions(dataset=args.dataset, out_dir=out, board=args.board, devices=args.boards,
                                 partition="dirichlet", quick=args.quick))
    images = [d / "firmware.elf" for d in res.device_dirs]
    boards = start_boards(args.boards, args.board, images, log_dir=out / "qemu")
    rows: list[dict[str, Any]] = []
    try:
        for k, b in enumerate(boards):
            with DeviceClient.connect(b.url) as dev:
                info = dev.hello()
                if info.model_hash.hex() != res.info["hash"]:
                    raise RuntimeError(f"board {k} runs model {info.model_hash.hex()}, expected {res.info['hash']}")
                ev = dev.eval()
                rows.append({"board": k, "url": b.url, "shard": info.shard_size, "accuracy": ev.accuracy,
                             "loss": ev.mean_loss, "eval_ms": ev.elapsed_ms, "flash": info.flash_used,
                             "sram": info.sram_used, "bytes_tx": dev.counters.tx_bytes if hasattr(dev, "counters") else None})
    finally:
        for b in boards:
            b.stop()
    print()
    print(f"{'board':>5} {'shard':>6} {'accuracy':>9} {'loss':>8} {'flash B':>9} {'SRAM B':>8}")
    for r in rows:
        print(f"{r['board']:>5} {r['shard']:>6} {r['accuracy']:>9.3f} {r['loss']:>8.4f} {r['flash']:>9,} {r['sram']:>8,}")
    ml = res.report.get("ml", {})
    summary = {"boards": rows, "ml": ml, "verify": res.report.get("verify"), "budget": res.report.get("budget"),
               "seconds": round(time.monotonic() - t0, 1)}
    (out / "demo_report.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\nreport: {out / 'demo_report.json'}  ({summary['seconds']} s)")
    return 0
