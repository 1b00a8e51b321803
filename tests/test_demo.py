"""The README's main job, `tinyfed demo`, end to end and quick: build (quick
training), 3 emulated boards of unequal speed under QEMU, 2 semi-async FTTE
steps with SecAgg+ per flush on secure-only images, the synchronous FedAvg
reference of the same fleet (simulated on the boards' measured speeds),
report + plot.  The full demo (4 boards, 20 steps) is the README's first
command; this checks its path still works."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.qemu

if not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")):
    pytest.skip("needs qemu-system-arm and arm-none-eabi-gcc", allow_module_level=True)


def test_demo_quick_runs_secure_rounds_on_secure_only_boards(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from tinyfed_host.cli import main

    out = tmp_path / "demo"
    rc = main(["demo", "--quick", "--boards", "3", "--updates", "2", "--epochs", "1", "--max-samples", "40",
               "--build", str(out), "--icount", "4", "--slowdown", "1,1,4", "--no-centralised"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "(slowdowns 1x, 1x, 4x), ftte, 2 aggregation steps" in text
    assert "secure-only images (no plain update path)" in text
    assert "secure aggregation (SecAgg+): 2 of 2 rounds without dropouts" in text
    report = json.loads((out / "demo_report.json").read_text())
    assert report["strategy"] == "ftte" and report["secure"] is True and report["slowdowns"] == [1, 1, 4]
    rounds = [r for r in report["rounds"] if r["round"] > 0]
    assert len(rounds) == 2 and all(r["secure"]["secure"] and not r["secure"]["aborted"] for r in rounds)
    assert all(r["updates"] == 3 for r in rounds)  # the buffer: 3 (SecAgg+ needs 3)
    # the synchronous reference: the same fleet, each board's measured seconds per job replayed
    ref = report["sync_reference"]
    jobs = ref["measured"]["job_seconds"]
    assert len(jobs) == 3 and all(s > 0 for s in jobs) and len(ref["rounds"]) == 3
    assert ref["rounds"][1]["time_s"] >= max(jobs)  # a synchronous round waits for the slowest board
    assert "sync FedAvg (same fleet):" in text and report["demo_target_accuracy"] > 0
    assert (out / "demo_accuracy.png").stat().st_size > 1000
    build = json.loads((out / "build_report.json").read_text())
    assert build["options"]["secure_only"] is True
