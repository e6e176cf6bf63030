"""Figures logged with each run."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from faqtune.model.metrics import K_VALUES  # noqa: E402


def gain_curve(history: list[tuple[int, dict[str, float]]], prefix: str = "tune"):
    """gain@k against boosting rounds, one line per k."""
    fig, ax = plt.subplots(figsize=(6, 4))
    rounds = [r for r, _ in history]
    for k in K_VALUES:
        ax.plot(rounds, [m[f"{prefix}_gain_at_{k}"] for _, m in history], marker=".",
                label=f"gain@{k}")
    ax.set(xlabel="boosting rounds", ylabel=f"{prefix} gain@k", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def feature_importance(importances: pd.Series, top: int = 25):
    """The `top` features by total split gain."""
    shown = importances.sort_values(ascending=True).tail(top)
    fig, ax = plt.subplots(figsize=(6, max(2.5, 0.25 * len(shown) + 1)))
    ax.barh(shown.index.astype(str), shown.to_numpy())
    ax.set(xlabel="total gain", title="feature importance")
    fig.tight_layout()
    return fig


def close(fig) -> None:
    plt.close(fig)
