"""Device-facing verbs of the `tinyfed` CLI: emulate, info, eval, fleet, simulate, demo."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_BUILD = Path("build/model")


class UsageError(Exception):
    """A federated verb cannot run as asked: printed as ``tinyfed: error: ...``, exit status 2."""


def _usage_errors(fn: Any) -> Any:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except UsageError as exc:
            print(f"tinyfed: error: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:
            from .checkpoint import CheckpointError

            if isinstance(exc, CheckpointError):
                print(f"tinyfed: error: {exc}", file=sys.stderr)
                return 2
            raise

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


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


def _train_config(args: argparse.Namespace) -> Any:
    from .fl_run import DEFAULT_TRAIN
    from .fl_client import TrainConfig

    d = DEFAULT_TRAIN
    return TrainConfig(lr=args.lr if args.lr is not None else d.lr,
                       momentum=args.momentum if args.momentum is not None else d.momentum,
                       weight_decay=args.weight_decay if args.weight_decay is not None else d.weight_decay,
                       epochs=args.epochs if args.epochs is not None else d.epochs,
                       batch=args.batch if args.batch is not None else d.batch,
                       seed=args.seed, schedule=args.schedule, max_samples=args.max_samples)


def _fleet_config(args: argparse.Namespace) -> Any:
    """The run's FleetConfig from the shared options."""
    from .fl_run import DEFAULT_ROUNDS
    from .rounds import FleetConfig

    return FleetConfig(rounds=args.rounds if args.rounds is not None else DEFAULT_ROUNDS,
                       train=_train_config(args), min_clients=args.min_clients,
                       train_timeout=args.train_timeout, persist=not args.no_persist,
                       server_lr=args.server_lr)


def _load_build(path: str) -> Any:
    from .experiment import BuildMissing, FlBuild

    try:
        return FlBuild.load(Path(path))
    except BuildMissing as exc:
        raise UsageError(str(exc)) from exc


@_usage_errors
def _cmd_fleet(args: argparse.Namespace) -> int:
    from .fl_run import run_federated
    from .protocol import ClientOptions
    from .rounds import RefusedError, SerialParticipant

    cfg = _fleet_config(args)
    build = _load_build(args.build)
    parts = [SerialParticipant(u, ClientOptions(timeout=args.timeout, retries=6)) for u in args.port]
    aggregator = secure_aggregator(args, len(parts))
    try:
        res = run_federated("fleet", build, parts, cfg, aggregator=aggregator,
                            report_path=Path(args.report) if args.report else None,
                            plot_path=Path(args.plot) if args.plot else None,
                            with_centralised=not args.no_centralised,
                            state_path=state_path(args, Path(args.build), "fleet"), resume=args.resume)
    except RefusedError as exc:
        raise UsageError(str(exc)) from exc
    print_secure_summary(res.records)
    return 0 if any(r.completed for r in res.records[1:]) or cfg.rounds == 0 else 1


@_usage_errors
def _cmd_simulate(args: argparse.Namespace) -> int:
    """N virtual devices (the device's C training engine on the host); secure by
    default: each masks its delta with the device's C SecAgg+ client."""
    import dataclasses

    import numpy as np

    from tinyfed_toolchain.data import partition_indices

    from .fl_run import run_federated
    from .simulate import VirtualParticipant, secagg_client_exe

    cfg = _fleet_config(args)
    if args.devices < 1 or (args.devices < 2 and not args.no_secure):
        raise UsageError(f"--devices {args.devices}: secure aggregation needs at least 2 devices "
                         "(the host must never see one device's update); use --no-secure for a single device")
    build = _load_build(args.build)
    if not build.shards:
        raise UsageError(f"{args.build}: no device shards (devices/devK/shard.npz): build with --devices N")
    shards = build.shards
    if args.devices != len(shards):
        # re-split the union of the build's shards into N non-IID shards
        x = np.concatenate([s[0] for s in shards])
        y = np.concatenate([s[1] for s in shards])
        idx = partition_indices(y.astype(np.int64), args.devices, scheme=args.partition, alpha=args.alpha,
                                seed=args.seed)
        shards = [(x[i], y[i]) for i in idx]
        build.shards = shards
    aggregator = secure_aggregator(args, len(shards))
    # the device's SecAgg+ client, compiled for the host once for the whole run
    exe = secagg_client_exe() if aggregator is not None else None
    parts = [VirtualParticipant(f"virtual{k}", build.model_dir, x, y, build.model_hash, model_name=build.model_name,
                                secagg_exe=exe)
             for k, (x, y) in enumerate(shards)]
    cfg = dataclasses.replace(cfg, parallel=False)  # virtual devices share the host's cores
    res = run_federated("simulate", build, parts, cfg, aggregator=aggregator,
                        report_path=Path(args.report) if args.report else None,
                        plot_path=Path(args.plot) if args.plot else None, with_centralised=not args.no_centralised,
                        extra={"shards": [int(len(s[1])) for s in shards]},
                        state_path=state_path(args, Path(args.build), "simulate"), resume=args.resume)
    print_secure_summary(res.records)
    return 0 if any(r.completed for r in res.records[1:]) or cfg.rounds == 0 else 1


def state_path(args: argparse.Namespace, build_dir: Path, kind: str) -> Path:
    """The run's checkpoint: --state, or <build>/<kind>_state.json."""
    return Path(args.state) if args.state else build_dir / f"{kind}_state.json"


def _add_fl_options(p: argparse.ArgumentParser, *, rounds_default: str = "20") -> None:
    p.add_argument("--rounds", type=int, help=f"federated rounds (default {rounds_default})")
    p.add_argument("--epochs", type=int, help="local epochs per round (default 5)")
    p.add_argument("--lr", type=float, help="local learning rate (default 0.02)")
    p.add_argument("--momentum", type=float, help="local SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, help="L2 on weights (default 0)")
    p.add_argument("--batch", type=int, help="samples per optimizer step (default 8)")
    p.add_argument("--schedule", default="cosine", choices=["constant", "cosine", "step"],
                   help="learning-rate schedule of each local run (default cosine)")
    p.add_argument("--max-samples", type=int, default=0, help="samples per device per epoch (0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-clients", type=int, default=1, help="updates a round needs to change the model")
    p.add_argument("--train-timeout", type=float, default=600.0, help="seconds a device may train per round")
    p.add_argument("--server-lr", type=float, default=1.0, help="server step on the averaged delta")
    p.add_argument("--state", help="checkpoint of the run, rewritten after every round "
                                    "(default <build>/<verb>_state.json)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run recorded in the checkpoint (same options; --rounds may grow)")
    p.add_argument("--no-persist", action="store_true", help="do not save parameters on the devices")
    p.add_argument("--no-secure", action="store_true",
                   help="aggregate plain deltas: the host then sees each device's update (secure aggregation, "
                        "SecAgg+, is the default)")
    p.add_argument("--no-centralised", action="store_true", help="skip the centralised baseline")
    p.add_argument("--report", help="write the run's JSON report here")
    p.add_argument("--plot", help="write a PNG of accuracy per round here")


def _add_secure_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clip", type=float, default=10.0,
                   help="secure aggregation: L2 clip of each device's update before encoding (default 10)")
    p.add_argument("--neighbours", type=int, help="SecAgg+ neighbourhood degree k (default ~2 log2 n, even)")
    p.add_argument("--threshold", type=int, help="Shamir threshold t per neighbourhood (default k/2 + 1)")
    p.add_argument("--graph-seed", type=int, help="seed of the neighbourhood graph (default: fresh each round)")
    p.add_argument("--dp-noise-multiplier", type=float, default=0.0,
                   help="central DP: the host adds discrete Gaussian noise, sigma = z * sensitivity (the clip "
                        "plus the rounding's sqrt(d) in fixed-point units), to the unmasked integer sum; "
                        "epsilon reported per round (default 0: off)")
    p.add_argument("--dp-delta", type=float, default=1e-5, help="delta of the reported (epsilon, delta)")


def secure_aggregator(args: argparse.Namespace, n_participants: int) -> Any:
    """The SecAgg+ aggregator for fleet/simulate/demo (None with --no-secure)."""
    if args.no_secure:
        return None
    from .secagg.aggregator import SecureAggregator, SecureOptions

    if args.dp_noise_multiplier < 0 or not 0 < args.dp_delta < 1 or not args.clip > 0:
        raise UsageError("--clip must be > 0, --dp-noise-multiplier >= 0, 0 < --dp-delta < 1")
    return SecureAggregator(SecureOptions(
        clip=args.clip, neighbours=args.neighbours, threshold=args.threshold, seed=args.graph_seed,
        dp_noise_multiplier=args.dp_noise_multiplier, dp_delta=args.dp_delta, fleet_size=n_participants))


def print_secure_summary(records: Any) -> None:
    """One line for the secure rounds; a line per round only where something happened."""
    rounds = [r for r in records[1:] if r.secure]
    if not rounds:
        return
    quiet = []
    for r in rounds:
        d = {k: len(v) for k, v in r.secure["dropouts"].items()}
        eps = f", epsilon {r.secure['epsilon']:.3f}" if "epsilon" in r.secure else ""
        if r.secure["aborted"] or any(d.values()):
            b = r.secure["bytes_per_device"]["MASKED_INPUT"]["from_device"]
            print(f"round {r.round}: secure aggregation {'aborted' if r.secure['aborted'] else 'ok'}, "
                  f"dropouts per stage {d}, masked input {b:.0f} B/device{eps}")
        else:
            quiet.append(r)
    if quiet:
        r = quiet[-1]
        b = r.secure["bytes_per_device"]["MASKED_INPUT"]["from_device"]
        ovh = r.secure["masking_overhead"]
        eps = f"; epsilon after round {r.round}: {r.secure['epsilon']:.3f}" if "epsilon" in r.secure else ""
        print(f"secure aggregation (SecAgg+): {len(quiet)} of {len(rounds)} rounds without dropouts; "
              f"masked input {b:.0f} B/device"
              + (f" ({ovh:.4f} x the plain update)" if ovh else "") + eps)


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

    return demo.run(args)


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from .cli import add_model_options
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

    f = sub.add_parser("fleet", help="federated rounds over serial (FedAvg) on boards running a build's images")
    f.add_argument("--port", action="append", required=True, help="serial URL of a board (repeatable)")
    f.add_argument("--build", default=str(DEFAULT_BUILD), help="the build the boards run (model, plan, held-out split)")
    f.add_argument("--timeout", type=float, default=2.0, help="seconds per request attempt")
    _add_fl_options(f)
    _add_secure_options(f)
    f.set_defaults(fn=_cmd_fleet)

    m = sub.add_parser("simulate", help="the same rounds with N virtual devices (the device C engine on the host), "
                                        "secure aggregation by the device's C SecAgg+ client by default")
    m.add_argument("--devices", type=int, required=True)
    m.add_argument("--build", default=str(DEFAULT_BUILD), help="build folder (model, plan, shards)")
    m.add_argument("--partition", default="dirichlet", choices=["iid", "dirichlet", "shards"],
                   help="how the build's shards are re-split when N differs from the build's devices")
    m.add_argument("--alpha", type=float, default=0.5)
    _add_fl_options(m)
    _add_secure_options(m)
    m.set_defaults(fn=_cmd_simulate)

    d = sub.add_parser("demo", help="the main job: build, boot 4 emulated boards, federated rounds, report + plot")
    d.add_argument("--dataset", default="digits")
    d.add_argument("--boards", type=int, default=4)
    d.add_argument("--board", default="mps2-an386")
    d.add_argument("--build", default=None, help="build folder (default build/demo-<dataset>)")
    d.add_argument("--quick", action="store_true", help="fewer training epochs in the build, fewer rounds")
    add_model_options(d)
    d.add_argument("--train-scheme", default="auto", help="what trains on the devices: auto | lastK | bias | loraR")
    d.add_argument("--icount", type=int, default=6,
                   help="run QEMU with -icount shift=N so boards report instructions per sample "
                        "(default 6; -1: off)")
    d.add_argument("--skip-build", action="store_true", help="reuse the build folder as it is")
    _add_secure_options(d)
    _add_fl_options(d)
    d.set_defaults(fn=_cmd_demo)
