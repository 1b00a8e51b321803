"""The verbs of the ``tinyfed`` command: flags -> an options dataclass -> the API function.

Each verb has ``add_<verb>_arguments(parser)`` (flags whose defaults are read
from the options dataclasses, so the command and the API cannot disagree) and
``cmd_<verb>(args) -> exit code``, which builds the options, calls the function
of :mod:`tinyfed` and prints what a person at a terminal wants to see.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np

import tinyfed
from tinyfed import (
    BuildOptions,
    DemoOptions,
    EmulateOptions,
    FleetConfig,
    FleetOptions,
    SecureOptions,
    SimulateOptions,
    TrainConfig,
)
from tinyfed.options import DEFAULT_BUILD, DP_MECHANISMS, ENGINES, PARTITIONS, StrategyOptions, TimingOptions, default_demo_config, \
    default_fleet_config, default_secure_options
from tinyfed.options import FlowerRunOptions, GatewayOptions, ServerSettings
from tinyfed_host.emulator import EmulatorError
from tinyfed_host.emulator import parse_slowdowns
from tinyfed_host.strategy import DEFAULT_BUFFER, STRATEGIES
from tinyfed_toolchain.facts.boards import board_names, emulated_board_names
from tinyfed_toolchain.facts.errors import EXIT_DEVICE, EXIT_FAILED, EXIT_OK, OptionsError
from tinyfed_toolchain.facts.train_config import SCHEDULES

_BUILD = BuildOptions()
_FLEET = default_fleet_config()
_TRAIN = _FLEET.train
_SECURE = default_secure_options()
SCHEME_HELP = ("what trains on the devices (default auto): auto | none | all | last[K] | bias[K] | "
               "lora[R][-lastK|-all][-store-h][-bias] | sparse<N>k | sparse:BYTES (FTTE's w*: one sparse subset "
               "for the whole fleet, picked by contribution analysis on the toolchain's own samples within N KiB "
               "of device training memory; devices train and send only it); see toolchain/training/schemes.py")
Subparsers = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _opt(v: str | None) -> Path | None:
    return Path(v) if v else None


# ---- build / verify ------------------------------------------------------------------------------


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Where on-device training starts and what the toolchain pretrains on (build, demo)."""
    p.add_argument("--head-init", default=_BUILD.head_init, choices=["pretrained", "reset-head"],
                   help="on-device training starts from the student pretrained on the public split "
                        "(default), or with the classifier re-initialised (learned federatedly on the "
                        "devices' data)")
    p.add_argument("--public-fraction", type=float, default=_BUILD.public_fraction,
                   help="share of the training split the toolchain pretrains on (server-side data); "
                        f"the devices' private shards come from the rest (default {_BUILD.public_fraction})")
    p.add_argument("--train-scheme", default=_BUILD.train_scheme, help=SCHEME_HELP)


def add_build_arguments(b: argparse.ArgumentParser) -> None:
    b.add_argument("--dataset", default=None,
                   help="digits | basicmotions | PATH.npz | PATH.csv (default: digits; with --tflite: "
                        "the data for verification, shards and images)")
    b.add_argument("--tflite", help="compile this int8 .tflite instead of training one")
    b.add_argument("--out", default=str(_BUILD.out_dir), help=f"output folder (default: {_BUILD.out_dir})")
    b.add_argument("--board", default=_BUILD.board,
                   help=f"target board: {' | '.join(board_names())} (default: {_BUILD.board})")
    b.add_argument("--devices", type=int, default=_BUILD.devices,
                   help=f"number of devices / data shards (default: {_BUILD.devices})")
    b.add_argument("--partition", default=_BUILD.partition, choices=list(PARTITIONS),
                   help="how the training set is split across devices (default: dirichlet, non-IID)")
    b.add_argument("--alpha", type=float, default=_BUILD.alpha, help="Dirichlet concentration (smaller = more skewed)")
    b.add_argument("--seed", type=int, default=_BUILD.seed)
    add_model_options(b)
    b.add_argument("--no-images", action="store_true", help="stop after the emitted C (no firmware images)")
    b.add_argument("--quick", action="store_true", help="few training epochs (smoke runs)")
    b.add_argument("--test-images", action="store_true",
                   help="compile the TEST-gated messages into the images (INFER_TEST, SA_ENCODED): they reveal "
                        "model outputs and the unmasked encoded update on request -- for tests, never deploy them")
    b.add_argument("--secure-only", action="store_true",
                   help="images without the plain update path: an update leaves a board only masked (SecAgg+); "
                        "--no-secure runs refuse them (for deployments with private data)")
    b.add_argument("--fleet-key", help="the user's fleet key that signs the manifest of the devices' identities "
                                       "(default <out>/fleet/fleet.key, created once, mode 0600: keep it offline)")
    b.add_argument("--min-neighbours", type=int, default=_BUILD.min_neighbours,
                   help="fleet policy in the signed manifest: the smallest SecAgg+ neighbourhood a device "
                        f"accepts (default {_BUILD.min_neighbours})")
    b.add_argument("--dp-min-noise-multiplier", type=float, default=_BUILD.dp_min_noise_multiplier,
                   help="fleet policy in the signed manifest: every secure round must run distributed DP "
                        "(noise added on the devices) with at least this noise multiplier; a device refuses "
                        f"less (default {_BUILD.dp_min_noise_multiplier:g}: no floor)")
    b.add_argument("--weight-floor", type=float, default=_BUILD.weight_floor,
                   help="fleet policy in the signed manifest: the smallest staleness factor (0..1] of a "
                        "device's public weight in a secure sum; a device refuses to be weighted below it, so "
                        "a host cannot weight the others down to isolate one update (default 0: no floor)")


def cmd_build(args: argparse.Namespace) -> int:
    if args.test_images and args.secure_only:
        raise OptionsError("--test-images and --secure-only contradict: test images reveal the unmasked update")
    tinyfed.build(BuildOptions(
        dataset=args.dataset, tflite=_opt(args.tflite), out_dir=Path(args.out), board=args.board,
        devices=args.devices, partition=args.partition, alpha=args.alpha, seed=args.seed,
        images=not args.no_images, quick=args.quick, public_fraction=args.public_fraction,
        train_scheme=args.train_scheme, head_init=args.head_init, test_images=args.test_images,
        secure_only=args.secure_only, fleet_key=args.fleet_key, min_neighbours=args.min_neighbours,
        dp_min_noise_multiplier=args.dp_min_noise_multiplier, weight_floor=args.weight_floor))
    return EXIT_OK


def add_verify_arguments(v: argparse.ArgumentParser) -> None:
    v.add_argument("model", help="int8 .tflite model")
    v.add_argument("--inputs", required=True, help=".npy of inputs shaped [N, *input_shape] (int8)")
    v.add_argument("--dump", help="write the C outputs to this .npy")
    v.add_argument("--work", help="folder for the emitted C and the native harness (default: build/verify)")


def cmd_verify(args: argparse.Namespace) -> int:
    res = tinyfed.verify(tinyfed.VerifyOptions(model=Path(args.model), inputs=Path(args.inputs),
                                               work_dir=_opt(args.work), dump=_opt(args.dump)))
    print(f"mismatches: {res.mismatches} of {res.total}")
    if res.mismatches:
        print(f"max |difference|: {res.max_abs_diff}")
    if args.dump:
        out = res.outputs[0] if len(res.outputs) == 1 else np.concatenate(
            [o.reshape(o.shape[0], -1) for o in res.outputs], axis=1)
        np.save(args.dump, out)
    return EXIT_OK if res.ok else EXIT_FAILED


_PROFILE = tinyfed.ProfileOptions(model=Path("model.tflite"))


def add_profile_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="int8 .tflite model")
    p.add_argument("--board", default=_PROFILE.board, help=f"an emulated board (default {_PROFILE.board})")
    p.add_argument("--runs", type=int, default=_PROFILE.runs, help=f"inferences timed (default {_PROFILE.runs})")
    p.add_argument("--json", help="also write the figures as JSON to this file")
    p.add_argument("--inputs", help=".npy of int8 inputs [N, *input_shape] (default: random, --seed)")
    p.add_argument("--seed", type=int, default=_PROFILE.seed, help="seed of the random inputs")
    p.add_argument("--kernels", choices=("dsp", "reference"), help="kernel variant (default: the board's)")
    p.add_argument("--work", help="folder for the emitted C and the image (default: build/profile/...)")


def cmd_profile(args: argparse.Namespace) -> int:
    res = tinyfed.profile(tinyfed.ProfileOptions(
        model=Path(args.model), board=args.board, runs=args.runs, inputs=_opt(args.inputs), seed=args.seed,
        kernels=args.kernels, work_dir=_opt(args.work)))
    print(res.table())
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res.to_json(), indent=2) + "\n")
    return EXIT_OK


# ---- boards --------------------------------------------------------------------------------------

_EMU = EmulateOptions()


def add_emulate_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("--boards", type=int, default=_EMU.boards)
    e.add_argument("--board", default=_EMU.board,
                   help=f"a board QEMU runs: {' | '.join(emulated_board_names())} (default: {_EMU.board})")
    e.add_argument("--build", default=str(_EMU.build), help="build folder with device images")
    e.add_argument("--dataset", default=_EMU.dataset, help="dataset if images must be built first")
    e.add_argument("--image", help="boot this ELF on every board instead of the device images")
    e.add_argument("--storage", help="folder for the boards' persistent storage files")
    e.add_argument("--slowdown", help="unequal boards: one power of two per board (or one for all), e.g. 1,1,4,8; "
                                      "each board is then held to real time at 15.6 MIPS / its slowdown "
                                      "(QEMU -icount shift=6+log2(slowdown),align=on)")


def cmd_emulate(args: argparse.Namespace) -> int:
    opts = EmulateOptions(boards=args.boards, board=args.board, build=Path(args.build), dataset=args.dataset,
                          image=_opt(args.image), storage=_opt(args.storage),
                          slowdowns=parse_slowdowns(args.slowdown, args.boards) if args.slowdown else None)
    with tinyfed.emulate(opts) as urls:
        for url in urls:
            print(url, flush=True)
        print(f"[tinyfed] {len(urls)} {args.board} board(s) running (QEMU pids "
              f"{', '.join(str(b.pid) for b in urls.boards)}); Ctrl-C to stop", file=sys.stderr, flush=True)
        stop = {"now": False}

        def _stop(signum: int, frame: Any) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        dead = urls.watch(lambda: stop["now"],
                          lambda line: print(f"[tinyfed] {line}", file=sys.stderr, flush=True))
    if dead and len(dead) == len(urls.boards):
        raise EmulatorError(f"all {len(dead)} board(s) are gone")
    return EXIT_DEVICE if dead else EXIT_OK


def add_info_arguments(i: argparse.ArgumentParser) -> None:
    i.add_argument("--port", action="append", required=True, help="serial URL (repeatable)")
    i.add_argument("--json", action="store_true")


def cmd_info(args: argparse.Namespace) -> int:
    rows = tinyfed.device_info(args.port)
    if args.json:
        print(json.dumps([{"port": u, **i.as_dict()} for u, i in rows], indent=2))
        return EXIT_OK
    for url, i in rows:
        print(f"{url}")
        print(f"  board          {i.board}   firmware {i.fw_version}   protocol v{i.proto_version}")
        print(f"  model          {i.model_name}   hash {i.model_hash.hex()}")
        print(f"  memory         flash {i.flash_used:,} B   SRAM {i.sram_used:,} B   arena {i.arena_bytes:,} B")
        print(f"  private shard  {i.shard_size} samples, {i.num_classes} classes")
    return EXIT_OK


def add_eval_arguments(v: argparse.ArgumentParser) -> None:
    v.add_argument("--port", action="append", required=True, help="serial URL (repeatable)")
    v.add_argument("--max-samples", type=int, default=0, help="0 = the whole shard")


def cmd_eval(args: argparse.Namespace) -> int:
    print(f"{'port':<28} {'samples':>7} {'accuracy':>9} {'loss':>8} {'ms':>7}")
    for url, r in tinyfed.evaluate(args.port, args.max_samples):
        print(f"{url:<28} {r.samples:>7} {r.accuracy:>9.3f} {r.mean_loss:>8.4f} {r.elapsed_ms:>7}")
    return EXIT_OK


# ---- federated runs ------------------------------------------------------------------------------


def add_fl_options(p: argparse.ArgumentParser, *, strategy: str | None = None) -> None:
    """The round engine's and the run's flags (fleet, simulate, demo): FleetConfig + RunOptions
    (``strategy``: the verb's default strategy, else FleetConfig's)."""
    p.add_argument("--updates", "--rounds", dest="updates", type=int,
                   help=f"aggregation steps (model versions) to run; --rounds says the same for sync "
                        f"(default {_FLEET.updates})")
    p.add_argument("--strategy", default=strategy or _FLEET.strategy.name, choices=list(STRATEGIES),
                   help="sync: lock-step FedAvg rounds; fedbuff: semi-async, buffer of K, s(tau) = 1/sqrt(1+tau); "
                        "ftte: semi-async, staleness factor of age and update variance "
                        f"(default {strategy or _FLEET.strategy.name})")
    p.add_argument("--buffer", type=int, help=f"K: updates per aggregation step (fedbuff / ftte; default "
                                               f"{DEFAULT_BUFFER}, at most the devices)")
    p.add_argument("--max-staleness", type=int, help="S: drop updates trained more than S versions ago "
                                                      "(default: keep all)")
    p.add_argument("--max-cohorts", type=int, default=_FLEET.max_cohorts,
                   help="semi-async secure runs: SecAgg+ cohorts in flight at once (only its members wait for a "
                        f"cohort's rounds; sync: always 1; default {_FLEET.max_cohorts})")
    p.add_argument("--target-accuracy", type=float,
                   help="report time_to_target_s: when the global accuracy first reached this fraction")
    p.add_argument("--epochs", type=int, default=_TRAIN.epochs, help=f"local epochs per round (default {_TRAIN.epochs})")
    p.add_argument("--lr", type=float, default=_TRAIN.lr, help=f"local learning rate (default {_TRAIN.lr})")
    p.add_argument("--momentum", type=float, default=_TRAIN.momentum,
                   help=f"local SGD momentum (default {_TRAIN.momentum})")
    p.add_argument("--weight-decay", type=float, default=_TRAIN.weight_decay,
                   help=f"L2 on weights (default {_TRAIN.weight_decay:g})")
    p.add_argument("--batch", type=int, default=_TRAIN.batch, help=f"samples per optimizer step (default {_TRAIN.batch})")
    p.add_argument("--schedule", default=_TRAIN.schedule, choices=list(SCHEDULES),
                   help=f"learning-rate schedule of each local run (default {_TRAIN.schedule})")
    p.add_argument("--max-samples", type=int, default=_TRAIN.max_samples, help="samples per device per epoch (0 = all)")
    p.add_argument("--seed", type=int, default=_TRAIN.seed)
    p.add_argument("--min-clients", type=int, default=_FLEET.min_clients, help="updates a round needs to change the model")
    p.add_argument("--train-timeout", type=float, default=_FLEET.train_timeout,
                   help=f"seconds a device may train per round (default {_FLEET.train_timeout:g})")
    p.add_argument("--server-lr", type=float, default=_FLEET.strategy.server_lr,
                   help="server step on the averaged delta")
    p.add_argument("--state", help="checkpoint of the run, rewritten after every round "
                                    "(default <build>/<verb>_state.json)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run recorded in the checkpoint (same options; --updates may grow)")
    p.add_argument("--no-persist", action="store_true", help="do not save parameters on the devices")
    p.add_argument("--no-secure", action="store_true",
                   help="aggregate plain deltas: the host then sees each device's update (secure aggregation, "
                        "SecAgg+, is the default)")
    p.add_argument("--no-centralised", action="store_true", help="skip the centralised baseline")
    p.add_argument("--report", help="write the run's JSON report here")
    p.add_argument("--plot", help="write a PNG of accuracy over time here")


def add_secure_options(p: argparse.ArgumentParser) -> None:
    """SecureOptions' flags (fleet, simulate, demo)."""
    p.add_argument("--clip", type=float, default=_SECURE.clip,
                   help=f"secure aggregation: L2 clip of each device's update before encoding (default {_SECURE.clip:g})")
    p.add_argument("--neighbours", type=int, help="SecAgg+ neighbourhood degree k (default ~2 log2 n, even)")
    p.add_argument("--threshold", type=int, help="Shamir threshold t per neighbourhood (default k/2 + 1)")
    p.add_argument("--graph-seed", type=int, help="seed of the neighbourhood graph (default: fresh each round)")
    p.add_argument("--dp", choices=DP_MECHANISMS, default=_SECURE.dp,
                   help="DP mechanism: central = the host adds the noise to the unmasked sum; distributed = "
                        "each device adds its share (a discrete Gaussian) before masking, so the host never "
                        "sees an exact sum (the noise of any t - 1 devices carries z)")
    p.add_argument("--dp-noise-multiplier", type=float, default=_SECURE.dp_noise_multiplier,
                   help="DP noise multiplier z: discrete Gaussian noise of sigma = z * sensitivity (the clip "
                        "plus the rounding's sqrt(d) in fixed-point units) on the integer sum -- added by the "
                        "host (central) or by the devices (distributed); epsilon reported per round "
                        "(default 0: off)")
    p.add_argument("--dp-delta", type=float, default=_SECURE.dp_delta,
                   help=f"delta of the reported (epsilon, delta) (default {_SECURE.dp_delta:g})")


def fleet_config(args: argparse.Namespace) -> FleetConfig:
    """The round engine's options from the flags of add_fl_options."""
    train = TrainConfig(lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay, epochs=args.epochs,
                        batch=args.batch, seed=args.seed, schedule=args.schedule, max_samples=args.max_samples)
    strategy = StrategyOptions(name=args.strategy, buffer=args.buffer, max_staleness=args.max_staleness,
                               server_lr=args.server_lr)
    if args.max_cohorts < 1:
        raise OptionsError(f"--max-cohorts {args.max_cohorts}: at least 1 cohort must be able to run")
    return dataclasses.replace(_FLEET, updates=args.updates if args.updates is not None else _FLEET.updates,
                               strategy=strategy, train=train, min_clients=args.min_clients,
                               train_timeout=args.train_timeout, persist=not args.no_persist,
                               target_accuracy=args.target_accuracy, max_cohorts=args.max_cohorts)


def secure_options(args: argparse.Namespace) -> SecureOptions | None:
    """SecAgg+ options from the flags of add_secure_options (None with --no-secure)."""
    if args.no_secure:
        return None
    return SecureOptions(clip=args.clip, neighbours=args.neighbours, threshold=args.threshold, seed=args.graph_seed,
                         dp_noise_multiplier=args.dp_noise_multiplier, dp_delta=args.dp_delta, dp=args.dp)


def run_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The RunOptions fields every federated verb shares."""
    return {"config": fleet_config(args), "secure": secure_options(args), "report": _opt(args.report),
            "plot": _opt(args.plot), "state": _opt(args.state), "resume": args.resume,
            "centralised": not args.no_centralised}


def _print_summary(result: tinyfed.RunResult) -> int:
    for line in tinyfed.secure_summary(result.records):
        print(line)
    return EXIT_OK if tinyfed.federated.completed(result) else EXIT_FAILED


def add_fleet_arguments(f: argparse.ArgumentParser) -> None:
    f.add_argument("--port", action="append", required=True, help="serial URL of a board (repeatable)")
    f.add_argument("--build", default=str(DEFAULT_BUILD), help="the build the boards run (model, plan, held-out split)")
    f.add_argument("--timeout", type=float, default=FleetOptions.timeout, help="seconds per request attempt")
    f.add_argument("--manifest", help="the fleet manifest the boards pin (their identities; default "
                                      "<build>/fleet/manifest.json, written by tinyfed build)")
    add_fl_options(f)
    add_secure_options(f)


def cmd_fleet(args: argparse.Namespace) -> int:
    return _print_summary(tinyfed.fleet(FleetOptions(ports=args.port, build=Path(args.build), timeout=args.timeout,
                                                     manifest=_opt(args.manifest), **run_fields(args))))


def add_simulate_arguments(m: argparse.ArgumentParser) -> None:
    m.add_argument("--devices", type=int, required=True)
    m.add_argument("--build", default=str(DEFAULT_BUILD), help="build folder (model, plan, shards)")
    m.add_argument("--partition", default=SimulateOptions.partition, choices=list(PARTITIONS),
                   help="how the build's shards are re-split when N differs from the build's devices")
    m.add_argument("--alpha", type=float, default=SimulateOptions.alpha)
    m.add_argument("--engine", default=SimulateOptions.engine, choices=list(ENGINES),
                   help="builtin: the rounds run in this process (fast, 10,000 devices); flower: on Flower's "
                        "simulation engine, each device a simulated Flower node (default builtin)")
    m.add_argument("--samples-per-device", type=int, default=SimulateOptions.samples_per_device,
                   help="when the build's samples cannot give every device this many disjoint ones, devices draw "
                        f"this many each from the pool (default {SimulateOptions.samples_per_device})")
    add_fl_options(m)
    add_clock_options(m)
    add_secure_options(m)


_TIMING = TimingOptions()


def add_clock_options(p: argparse.ArgumentParser) -> None:
    """TimingOptions' flags: the virtual clock's device model (simulate)."""
    p.add_argument("--stragglers", type=float, default=_TIMING.stragglers,
                   help=f"fraction F of devices that are slow (default {_TIMING.stragglers:g})")
    p.add_argument("--straggler-slowdown", type=float, default=_TIMING.straggler_slowdown,
                   help=f"X: a straggler computes X times slower (default {_TIMING.straggler_slowdown:g})")
    p.add_argument("--device-mhz", type=float, default=_TIMING.device_mhz,
                   help=f"M: device clock of the virtual time, 1 instruction per cycle (default {_TIMING.device_mhz:g})")
    p.add_argument("--baud", type=int, default=_TIMING.baud,
                   help=f"B: device link speed, UART 8N1 (default {_TIMING.baud})")
    p.add_argument("--insns-per-sample", type=float,
                   help="device instructions per training sample (default: measured once on the build's device "
                        "image under QEMU -icount, cached in <build>/device_cost.json)")


def cmd_simulate(args: argparse.Namespace) -> int:
    """N in-process devices (the boards' C code) on a virtual clock; secure by default:
    each masks its update with its own C SecAgg+ client."""
    timing = TimingOptions(device_mhz=args.device_mhz, baud=args.baud, insns_per_sample=args.insns_per_sample,
                           stragglers=args.stragglers, straggler_slowdown=args.straggler_slowdown)
    return _print_summary(tinyfed.simulate(SimulateOptions(
        devices=args.devices, build=Path(args.build), partition=args.partition, alpha=args.alpha, seed=args.seed,
        samples_per_device=args.samples_per_device, timing=timing, engine=args.engine,
        progress=sys.stderr.isatty(), **run_fields(args))))


def add_demo_arguments(d: argparse.ArgumentParser) -> None:
    d.add_argument("--dataset", default=DemoOptions.dataset)
    d.add_argument("--boards", type=int, default=DemoOptions.boards)
    d.add_argument("--board", default=DemoOptions.board)
    d.add_argument("--build", default=None, help="build folder (default build/demo-<dataset>)")
    d.add_argument("--quick", action="store_true", help="fewer training epochs in the build, 4 rounds")
    add_model_options(d)
    d.add_argument("--icount", type=int, default=DemoOptions.icount,
                   help="run QEMU with -icount shift=N so boards report instructions per sample; unequal boards "
                        "(--slowdown) are held to real time at 10^9 / 2^N instructions per second / their slowdown "
                        f"(default {DemoOptions.icount}; -1: off, boards equal and free-running)")
    d.add_argument("--skip-build", action="store_true", help="reuse the build folder as it is")
    d.add_argument("--slowdown", help="how much slower each board computes: powers of two, one per board (or one "
                                      "for all; default: the last quarter 8x, the board before them 2x -- 4 boards: "
                                      "1,1,2,8); each board is held to real time at 10^9 / 2^icount instructions "
                                      "per second / its slowdown (--icount 4: 62.5 M, 31 M, 7.8 M)")
    d.add_argument("--no-sync-reference", action="store_true",
                   help="skip the simulated synchronous FedAvg of the same fleet drawn beside a semi-async run")
    add_secure_options(d)
    add_fl_options(d, strategy=DemoOptions().config.strategy.name)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.quick and args.updates is None:
        args.updates = 4
    if args.strategy != "sync" and args.buffer is None:
        args.buffer = default_demo_config(args.boards, secure=not args.no_secure).strategy.buffer
    tinyfed.demo(DemoOptions(
        build=_opt(args.build), dataset=args.dataset, boards=args.boards, board=args.board, quick=args.quick,
        train_scheme=args.train_scheme, head_init=args.head_init, public_fraction=args.public_fraction,
        icount=args.icount if args.icount is not None and args.icount >= 0 else None,
        skip_build=args.skip_build, sync_reference=not args.no_sync_reference,
        slowdowns=parse_slowdowns(args.slowdown, args.boards) if args.slowdown else None, **run_fields(args)))
    return EXIT_OK


# ---- Flower: gateways and the Flower app ---------------------------------------------------------

_GW = GatewayOptions(superlink="", ports=())
_FR = FlowerRunOptions()
_SV = ServerSettings()


def _add_connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--superlink", required=True, help="HOST:PORT of the Flower SuperLink")
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--insecure", action="store_true",
                     help="plain HTTP to the SuperLink (tests, a trusted network; default: TLS)")
    tls.add_argument("--root-certificates", help="CA certificate (PEM) that signed the SuperLink's certificate "
                                                 "(default: the system's CAs)")


def add_gateway_arguments(g: argparse.ArgumentParser) -> None:
    _add_connection(g)
    g.add_argument("--port", action="append", required=True, help="serial URL of a board (repeatable)")
    g.add_argument("--name", help="gateway name; its boards are NAME/PORT in reports (default: the host name)")
    g.add_argument("--timeout", type=float, default=_GW.timeout,
                   help=f"seconds per request attempt on a serial link (default {_GW.timeout:g})")
    g.add_argument("--isolation", default=_GW.isolation, choices=["process", "subprocess"],
                   help="process: the gateway runs Flower's messages itself, no process per message (default); "
                        "subprocess: Flower starts its ClientApp per message, which hands it to the gateway")
    g.add_argument("--runtime-port", type=int, default=_GW.runtime_port,
                   help="local port of the SuperNode's Runtime API (default: a free one)")
    g.add_argument("--auth-key", help="the gateway's private key (PEM) for Flower's SuperNode authentication "
                                      "(the SuperLink lists its public key; TLS only)")
    g.add_argument("--log-dir", help="folder for the SuperNode's log (default: a temporary folder)")


def cmd_gateway(args: argparse.Namespace) -> int:
    opts = GatewayOptions(superlink=args.superlink, ports=tuple(args.port), name=args.name or "",
                          insecure=args.insecure, root_certificates=args.root_certificates, timeout=args.timeout,
                          runtime_port=args.runtime_port, isolation=args.isolation, auth_key=args.auth_key)
    with tinyfed.gateway(opts, log=lambda s: print(s, flush=True), workdir=_opt(args.log_dir)) as gw:
        print(f"[gateway] {gw.opt.name}: {len(opts.ports)} board(s) served to the federation at {opts.superlink} "
              f"({'insecure' if opts.insecure else 'TLS'}); Ctrl-C to stop", flush=True)
        gw.serve_forever()
    return EXIT_OK


def add_flower_arguments(f: argparse.ArgumentParser) -> None:
    sub = f.add_subparsers(dest="flower_action", required=True, metavar="ACTION")
    r = sub.add_parser("run", help="flwr run of tinyfed's Flower app: rounds over every board of every gateway")
    _add_connection(r)
    r.add_argument("--build", default=str(DEFAULT_BUILD),
                   help="the build the boards run (a path on the SuperLink's machine)")
    r.add_argument("--min-devices", type=int, default=_SV.min_devices, help="boards online before round 1")
    r.add_argument("--wait", type=float, default=_SV.wait, help=f"seconds to wait for them (default {_SV.wait:g})")
    r.add_argument("--latency", type=float, default=_SV.latency,
                   help="seconds a gateway may take beyond a step's own time before its boards count as gone "
                        f"(default {_SV.latency:g})")
    r.add_argument("--check-exact", action="store_true",
                   help="TEST IMAGES ONLY: check each secure sum against the boards' plain encodings")
    r.add_argument("--flwr-home", default=str(_FR.flwr_home),
                   help=f"folder for the Flower CLI's configuration (default {_FR.flwr_home}; ~/.flwr is not touched)")
    add_fl_options(r)
    add_secure_options(r)


def cmd_flower(args: argparse.Namespace) -> int:
    fields = run_fields(args)
    res = tinyfed.flower_run(FlowerRunOptions(
        superlink=args.superlink, insecure=args.insecure, root_certificates=_opt(args.root_certificates),
        flwr_home=Path(args.flwr_home), build=Path(args.build),
        server=ServerSettings(min_devices=args.min_devices, wait=args.wait, latency=args.latency,
                              check_exact=args.check_exact), **fields))
    rep = res.report
    if rep is not None and rep.get("rounds"):
        r = rep["rounds"]
        print(f"[tinyfed] {rep.get('devices')} board(s), {len(r) - 1} step(s): global accuracy "
              f"{r[0]['accuracy']:.4f} -> {r[-1]['accuracy']:.4f}; report {res.report_path}")
        return EXIT_OK if any(x.get("completed") for x in r[1:]) or len(r) <= 1 else EXIT_FAILED
    return EXIT_OK


VERBS: dict[str, tuple[str, Any, Any]] = {
    "build": ("data -> teacher -> distilled int8 student -> emitted C -> firmware images",
              add_build_arguments, cmd_build),
    "verify": ("emitted C vs the tflite-micro runtime, byte for byte", add_verify_arguments, cmd_verify),
    "profile": ("instructions per inference (total and per layer), arena, flash and SRAM on an emulated board",
                add_profile_arguments, cmd_profile),
    "emulate": ("start N emulated boards, print one serial URL per line", add_emulate_arguments, cmd_emulate),
    "info": ("what a board is running (HELLO/INFO)", add_info_arguments, cmd_info),
    "eval": ("each board evaluates its model on its own private shard", add_eval_arguments, cmd_eval),
    "fleet": ("federated rounds over serial (FedAvg) on boards running a build's images",
              add_fleet_arguments, cmd_fleet),
    "simulate": ("the same rounds with N in-process devices (the boards' C code) on a virtual clock, "
                 "secure aggregation by the devices' C SecAgg+ client by default", add_simulate_arguments,
                 cmd_simulate),
    "demo": ("the main job: build, boot 4 emulated boards, federated rounds, report + plot",
             add_demo_arguments, cmd_demo),
    "gateway": ("own the boards plugged into this machine and serve them to a Flower federation "
                "(long-lived; one per machine)", add_gateway_arguments, cmd_gateway),
    "flower": ("tinyfed's Flower app: flower run = rounds over every board of every gateway",
               add_flower_arguments, cmd_flower),
}


def register(sub: Any) -> None:
    """Add every verb to the ``tinyfed`` parser's subcommands."""
    for name, (help_text, add_arguments, fn) in VERBS.items():
        p = sub.add_parser(name, help=help_text)
        add_arguments(p)
        p.set_defaults(fn=fn)


__all__ = ["VERBS", "register", "add_model_options", "add_fl_options", "add_secure_options", "fleet_config",
           "secure_options", "run_fields"]
