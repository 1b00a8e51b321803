"""Plot of a federated run: global accuracy per round (PNG, matplotlib Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .rounds import RoundRecord


def plot_accuracy(records: Sequence[RoundRecord], path: Path, *, centralised: float | None = None,
                  title: str = "federated training") -> Path:
    """Global held-out accuracy per round; the centralised baseline as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r.round for r in records]
    acc = [100.0 * r.accuracy for r in records]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        ax.plot(rounds, acc, marker="o", label="FedAvg (global model, held-out split)")
        failed = [(r.round, 100.0 * r.accuracy) for r in records if r.round and not r.completed]
        if failed:
            ax.scatter(*zip(*failed), marker="x", color="red", zorder=3, label="round failed")
        if centralised is not None:
            ax.axhline(100.0 * centralised, linestyle="--", color="gray",
                       label=f"centralised fine-tuning ({100.0 * centralised:.1f}%)")
        ax.set_xlabel("round")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.set_xticks(rounds if len(rounds) <= 20 else rounds[:: max(1, len(rounds) // 10)])
        ax.legend(loc="lower right")
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


__all__ = ["plot_accuracy"]
