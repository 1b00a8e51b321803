"""Semi-asynchronous secure rounds on unequal emulated boards (QEMU).

Four mps2-an386 boards held to real time at different speeds
(``start_boards(..., slowdowns=...)``: QEMU -icount shift=6+log2(slowdown),
align=on), FTTE with a buffer of 3 and SecAgg+ per buffer flush, on
secure-only images.  Checked: the run completes and improves the model; the
slow board really is slower (its jobs take longer in wall time, while every
board reports the same instructions per training sample); its updates arrive
stale and are weighted down on the device (public weight < samples); no
secure aggregation aborted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.qemu

if not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")):
    pytest.skip("needs qemu-system-arm and arm-none-eabi-gcc", allow_module_level=True)

from tinyfed_host.aggregation import WEIGHT_ONE  # noqa: E402
from tinyfed_host.emulator import start_boards  # noqa: E402
from tinyfed_host.experiment import FlBuild  # noqa: E402
from tinyfed_host.fl_run import run_federated  # noqa: E402
from tinyfed_host.protocol import ClientOptions  # noqa: E402
from tinyfed_host.rounds import FleetConfig, SerialParticipant  # noqa: E402
from tinyfed_host.secagg.aggregator import SecureAggregator, SecureOptions  # noqa: E402
from tinyfed_host.strategy import StrategyOptions  # noqa: E402
from tinyfed_toolchain.facts.train_config import TrainConfig  # noqa: E402

SLOWDOWNS = [1, 1, 2, 8]


def test_semi_async_secure_rounds_on_four_unequal_boards(digits_fl_images: Path, tmp_path: Path) -> None:
    build = FlBuild.load(digits_fl_images)
    assert len(build.images) == 4
    boards = start_boards(4, "mps2-an386", build.images, 6, slowdowns=SLOWDOWNS, log_dir=tmp_path / "qemu")
    try:
        parts = [SerialParticipant(b.url, ClientOptions(timeout=5.0, retries=6), name=f"board{k}")
                 for k, b in enumerate(boards)]
        cfg = FleetConfig(updates=5, strategy=StrategyOptions("ftte", buffer=3, max_staleness=8),
                          train=TrainConfig(lr=0.02, momentum=0.9, epochs=1, batch=8, seed=1, max_samples=40),
                          train_timeout=120.0, persist=False, target_accuracy=0.5)
        agg = SecureAggregator(SecureOptions(clip=10.0), log=lambda s: None)
        res = run_federated("fleet", build, parts, cfg, aggregator=agg, with_centralised=False,
                            log=lambda s: None, report_path=tmp_path / "r.json")
    finally:
        for b in boards:
            b.stop()
    recs = res.records
    rep = res.report
    assert rep["strategy"] == "ftte" and rep["secure"] is True
    assert len(recs) == 6 and all(r.completed and r.updates == 3 for r in recs[1:])
    assert all(r.secure and not r.secure["aborted"] for r in recs[1:])
    assert recs[-1].accuracy > recs[0].accuracy
    times = [r.time_s for r in recs]
    assert all(b > a for a, b in zip(times[1:], times[2:]))  # wall seconds
    rows = [d for r in recs[1:] for d in r.devices if d.status == "ok" and d.train is not None]
    # the same work costs every board the same instructions (each counts with its own -icount shift) ...
    ips = {d.name: d.train.insns_per_sample for d in rows}  # type: ignore[union-attr]
    assert len(ips) == 4 and max(ips.values()) <= 1.02 * min(ips.values())
    # ... but not the same time: the board slowed down 8x takes longer in wall time (its whole job:
    # parameters in over its UART, training, its own evaluation)
    def train_s(name: str) -> float:
        return float(np.mean([d.seconds for d in rows if d.name == name]))
    assert train_s("board3") > 2.5 * (train_s("board0") + train_s("board1")) / 2
    # updates arrived stale and their devices weighted them down (public weight < samples)
    stale = [d for d in rows if d.staleness]
    assert stale and all(d.public_weight is not None and d.public_weight < WEIGHT_ONE * d.weight for d in stale)
    # fast boards contributed more updates than the slowest
    count = {n: sum(1 for d in rows if d.name == n and d.public_weight is not None) for n in ips}
    assert count["board3"] < max(count["board0"], count["board1"])
