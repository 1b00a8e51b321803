"""Device-facing verbs of the `tinyfed` CLI: emulate, info, eval, demo."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_BUILD = Path("build/model")


def _device_images(build_dir: Path) -> list[Path]:
    devs = sorted((build_dir / "devices").glob("dev*/firmware.elf"), key=lambda p: int(p.parent.name[3:]))
    return devs


def ensure_images(build_dir: Path, n: int, board: str, dataset: str = "digits", quick: bool = False) -> list[Path]:
    """Device images for ``n`` boards, building them if they are missing."""
    images = _device_images(build_dir)
    report = build_dir / "build_report.json"
    stale = False
    if report.exists():
        opts = json.loads(report.read_text()).get("options", {})
        stale = opts.get("board") != board
    if len(images) < n or stale:
        from tinyfed_toolchain.build import BuildOptions, run_build

        print(f"[tinyfed] building {n} device images for {board} into {build_dir} ...", file=sys.stderr)
        run_build(BuildOptions(dataset=dataset, out_dir=build_dir, board=board, devices=n, quick=quick))
        images = _device_images(build_dir)
    return images[:n]


def _cmd_emulate(args: argparse.Namespace) -> int:
    from .emulator import start_boards

    build_dir = Path(args.build)
    if args.image:
        images = [Path(args.image)] * args.boards
    else:
        images = ensure_images(build_dir, args.boards, args.board, args.dataset)
    boards = start_boards(args.boards, args.board, images,
                          storage_dir=Path(args.storage) if args.storage else None)
    try:
        for b in boards:
            print(b.url, flush=True)
        print(f"[tinyfed] {len(boards)} {args.board} board(s) running (QEMU pids "
              f"{', '.join(str(b.pid) for b in boards)}); Ctrl-C to stop", file=sys.stderr, flush=True)
        stop = {"now": False}

        def _stop(signum: int, frame: Any) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        while not stop["now"] and any(b.running for b in boards):
            time.sleep(0.2)
    finally:
        for b in boards:
            b.stop()
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .protocol import DeviceClient

    rows = []
    for url in args.port:
        with DeviceClient.connect(url) as dev:
            info = dev.hello()
            rows.append((url, info))
    if args.json:
        print(json.dumps([{"port": u, **i.as_dict()} for u, i in rows], indent=2))
        return 0
    for url, i in rows:
        print(f"{url}")
        print(f"  board          {i.board}   firmware {i.fw_version}   protocol v{i.proto_version}")
        print(f"  model          {i.model_name}   hash {i.model_hash.hex()}")
        print(f"  memory         flash {i.flash_used:,} B   SRAM {i.sram_used:,} B   arena {i.arena_bytes:,} B")
        print(f"  private shard  {i.shard_size} samples, {i.num_classes} classes")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .protocol import DeviceClient

    print(f"{'port':<28} {'samples':>7} {'accuracy':>9} {'loss':>8} {'ms':>7}")
    for url in args.port:
        with DeviceClient.connect(url) as dev:
            dev.hello()
            r = dev.eval(args.max_samples)
        print(f"{url:<28} {r.samples:>7} {r.accuracy:>9.3f} {r.mean_loss:>8.4f} {r.elapsed_ms:>7}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

    return demo.run(args)


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    e = sub.add_parser("emulate", help="start N emulated boards, print one serial URL per line")
    e.add_argument("--boards", type=int, default=4)
    e.add_argument("--board", default="mps2-an386", help="mps2-an386 (M4F) | mps2-an500 (M7) | mps2-an505 (M33)")
    e.add_argument("--build", default=str(DEFAULT_BUILD), help="build folder with device images")
    e.add_argument("--dataset", default="digits", help="dataset if images must be built first")
    e.add_argument("--image", help="boot this ELF on every board instead of the device images")
    e.add_argument("--storage", help="folder for the boards' persistent storage files")
    e.set_defaults(fn=_cmd_emulate)

    i = sub.add_parser("info", help="what a board is running (HELLO/INFO)")
    i.add_argument("--port", action="append", required=True, help="serial URL (repeatable)")
    i.add_argument("--json", action="store_true")
    i.set_defaults(fn=_cmd_info)

    v = sub.add_parser("eval", help="each board evaluates its model on its own private shard")
    v.add_argument("--port", action="append", required=True, help="serial URL (repeatable)")
    v.add_argument("--max-samples", type=int, default=0, help="0 = the whole shard")
    v.set_defaults(fn=_cmd_eval)

    d = sub.add_parser("demo", help="the main job: build, boot 4 emulated boards, run, report")
    d.add_argument("--dataset", default="digits")
    d.add_argument("--boards", type=int, default=4)
    d.add_argument("--board", default="mps2-an386")
    d.add_argument("--build", default="build/demo")
    d.add_argument("--quick", action="store_true", help="fewer training epochs")
    d.set_defaults(fn=_cmd_demo)
