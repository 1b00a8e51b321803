"""Plot of a federated run: global accuracy against time (or step), PNG via matplotlib Agg.

The x axis is the run's clock (``RoundRecord.time_s``: virtual seconds in
simulation, wall seconds on boards) when it advanced, else the step number.
A reference run (e.g. synchronous FedAvg of the same fleet) is drawn beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .rounds import RoundRecord


def _time_unit(t_max: float) -> tuple[float, str]:
    if t_max >= 2 * 3600:
        return 3600.0, "h"
    if t_max >= 120:
        return 60.0, "min"
    return 1.0, "s"


def plot_accuracy(records: Sequence[RoundRecord], path: Path, *, centralised: float | None = None,
                  title: str = "federated training", label: str = "FedAvg",
                  reference: Sequence[RoundRecord] | None = None, reference_label: str = "sync FedAvg",
                  target: float | None = None, time_axis: bool | None = None, time_base: str = "") -> Path:
    """Global held-out accuracy over time (or per step); a reference run, the centralised
    baseline and the target accuracy as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [list(records)] + ([list(reference)] if reference else [])
    if time_axis is None:
        time_axis = any(r.time_s > 0 for run in runs for r in run)
    t_max = max((r.time_s for run in runs for r in run), default=0.0)
    scale, unit = _time_unit(t_max)

    def xs(run: list[RoundRecord]) -> list[float]:
        return [r.time_s / scale for r in run] if time_axis else [float(r.round) for r in run]

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        ax.plot(xs(runs[0]), [100.0 * r.accuracy for r in runs[0]], marker="o" if len(runs[0]) <= 40 else None,
                markersize=3, label=f"{label} (global model, held-out split)")
        if reference:
            ax.plot(xs(runs[1]), [100.0 * r.accuracy for r in runs[1]], marker="s" if len(runs[1]) <= 40 else None,
                    markersize=3, color="tab:orange", label=reference_label)
        failed = [(x, 100.0 * r.accuracy) for x, r in zip(xs(runs[0]), runs[0]) if r.round and not r.completed]
        if failed:
            ax.scatter(*zip(*failed), marker="x", color="red", zorder=3, label="step failed")
        if centralised is not None:
            ax.axhline(100.0 * centralised, linestyle="--", color="gray",
                       label=f"centralised fine-tuning ({100.0 * centralised:.1f}%)")
        if target is not None:
            ax.axhline(100.0 * target, linestyle=":", color="green", label=f"target {100.0 * target:.1f}%")
        ax.set_xlabel(f"time ({unit}{', ' + time_base if time_base else ''})" if time_axis else "step")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


__all__ = ["plot_accuracy"]
