"""`tinyfed` — the one command-line entry point.

Verbs import their heavy dependencies (TensorFlow, the emulator) lazily, so
``tinyfed --help`` and the serial verbs start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def _cmd_build(args: argparse.Namespace) -> int:
    from tinyfed_toolchain.build import BuildOptions, run_build

    if args.test_images and args.secure_only:
        raise CliError("--test-images and --secure-only contradict: test images reveal the unmasked update")
    opts = BuildOptions(
        dataset=args.dataset,
        tflite=Path(args.tflite) if args.tflite else None,
        out_dir=Path(args.out),
        board=args.board,
        devices=args.devices,
        partition=args.partition,
        alpha=args.alpha,
        seed=args.seed,
        images=not args.no_images,
        quick=args.quick,
        public_fraction=args.public_fraction,
        train_scheme=args.train_scheme,
        head_init=args.head_init,
        test_images=args.test_images,
        secure_only=args.secure_only,
    )
    run_build(opts)
    return 0


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Where on-device training starts and what the toolchain pretrains on (build, demo)."""
    p.add_argument("--head-init", default="pretrained", choices=["pretrained", "reset-head"],
                   help="on-device training starts from the student pretrained on the public split "
                        "(default), or with the classifier re-initialised (learned federatedly on the "
                        "devices' data)")
    p.add_argument("--public-fraction", type=float, default=0.15,
                   help="share of the training split the toolchain pretrains on (server-side data); "
                        "the devices' private shards come from the rest (default 0.15)")


def _cmd_verify(args: argparse.Namespace) -> int:
    import numpy as np

    from tinyfed_toolchain.verify import verify

    tflite = Path(args.model).read_bytes()
    try:
        x = np.load(args.inputs)
    except Exception as exc:
        raise CliError(f"cannot read inputs {args.inputs}: {exc}") from exc
    res = verify(tflite, x, Path(args.work) if args.work else None)
    print(f"mismatches: {res.mismatches} of {res.total}")
    if res.mismatches:
        print(f"max |difference|: {res.max_abs_diff}")
    if args.dump:
        out = res.outputs[0] if len(res.outputs) == 1 else np.concatenate(
            [o.reshape(o.shape[0], -1) for o in res.outputs], axis=1
        )
        np.save(args.dump, out)
    return 0 if res.ok else 1


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tinyfed",
        description="Private, federated on-device learning for microcontrollers.",
    )
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    b = sub.add_parser("build", help="data → teacher → distilled int8 student → emitted C → firmware images")
    b.add_argument("--dataset", default=None,
                   help="digits | basicmotions | PATH.npz | PATH.csv (default: digits; with --tflite: "
                        "the data for verification, shards and images)")
    b.add_argument("--tflite", help="compile this int8 .tflite instead of training one")
    b.add_argument("--out", default="build/model", help="output folder (default: build/model)")
    b.add_argument("--board", default="mps2-an386", help="target board (default: mps2-an386)")
    b.add_argument("--devices", type=int, default=4, help="number of devices / data shards (default: 4)")
    b.add_argument("--partition", default="dirichlet", choices=["iid", "dirichlet", "shards"],
                   help="how the training set is split across devices (default: dirichlet, non-IID)")
    b.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration (smaller = more skewed)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--train-scheme", default="auto",
                   help="what trains on the devices: auto (last 2 layers) | lastK | bias | loraR | none")
    add_model_options(b)
    b.add_argument("--no-images", action="store_true", help="stop after the emitted C (no firmware images)")
    b.add_argument("--quick", action="store_true", help="few training epochs (smoke runs)")
    b.add_argument("--test-images", action="store_true",
                   help="compile the TEST-gated messages into the images (INFER_TEST, SA_ENCODED): they reveal "
                        "model outputs and the unmasked encoded update on request -- for tests, never deploy them")
    b.add_argument("--secure-only", action="store_true",
                   help="images without the plain update path: an update leaves a board only masked (SecAgg+); "
                        "--no-secure runs refuse them (for deployments with private data)")
    b.set_defaults(fn=_cmd_build)

    v = sub.add_parser("verify", help="emitted C vs the tflite-micro runtime, byte for byte")
    v.add_argument("model", help="int8 .tflite model")
    v.add_argument("--inputs", required=True, help=".npy of inputs shaped [N, *input_shape] (int8)")
    v.add_argument("--dump", help="write the C outputs to this .npy")
    v.add_argument("--work", help="folder for the emitted C and host binary (default: build/verify)")
    v.set_defaults(fn=_cmd_verify)

    _register_device_verbs(sub)
    return p


def _register_device_verbs(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Verbs that talk to boards (emulate/info/eval/demo) live in host/commands.py."""
    try:
        from . import commands
    except ImportError:
        return
    commands.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    fn: Callable[[argparse.Namespace], int] = args.fn
    try:
        return int(fn(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except CliError as exc:
        print(f"tinyfed: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # Known user-facing errors from the toolchain and host carry clear messages.
        from tinyfed_toolchain.tflite_reader import ModelError

        known: tuple[type[BaseException], ...] = (ModelError, FileNotFoundError)
        try:
            from tinyfed_toolchain.data import DataError

            known += (DataError,)
        except ImportError:
            pass
        for mod, names in (
            ("tinyfed_toolchain.budget", ("BudgetError",)),
            ("tinyfed_toolchain.firmware", ("BuildError",)),
            ("tinyfed_toolchain.host_cc", ("CompileError",)),
            ("tinyfed_toolchain.train_plan", ("TrainPlanError",)),
            ("tinyfed_host.emulator", ("EmulatorError",)),
            ("tinyfed_host.protocol", ("ProtocolError",)),
            ("tinyfed_host.link", ("LinkError", "LinkTimeout")),
        ):
            try:
                m = __import__(mod, fromlist=list(names))
                known += tuple(getattr(m, n) for n in names if hasattr(m, n))
            except ImportError:
                pass
        if isinstance(exc, known):
            print(f"tinyfed: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
