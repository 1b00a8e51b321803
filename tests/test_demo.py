"""The README's main job, `tinyfed demo`, end to end and quick: build (quick
training), 3 emulated boards under QEMU, 2 secure federated rounds on
secure-only images, report + plot.  The full demo (4 boards, 20 rounds) is
the README's first command; this checks its path still works."""

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
    rc = main(["demo", "--quick", "--boards", "3", "--rounds", "2", "--epochs", "1", "--max-samples", "40",
               "--build", str(out), "--icount", "-1", "--no-centralised"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "secure-only images (no plain update path)" in text
    assert "secure aggregation (SecAgg+): 2 of 2 rounds without dropouts" in text
    report = json.loads((out / "demo_report.json").read_text())
    rounds = [r for r in report["rounds"] if r["round"] > 0]
    assert len(rounds) == 2 and all(r["secure"]["secure"] and not r["secure"]["aborted"] for r in rounds)
    assert all(r["updates"] == 3 for r in rounds)
    assert (out / "demo_accuracy.png").stat().st_size > 1000
    build = json.loads((out / "build_report.json").read_text())
    assert build["options"]["secure_only"] is True
