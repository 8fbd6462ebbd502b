"""Metrics of a classifier's probabilities against the true labels."""

from __future__ import annotations

from typing import Any

import numpy as np


def compute_metrics(
    y_true: np.ndarray, probs: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    n = len(class_names)
    labels = list(range(n))
    y_pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, int)
    eps = 1e-7
    loss = (
        float(-np.mean(np.log(np.clip(probs[np.arange(len(y_true)), y_true], eps, 1.0))))
        if len(y_true)
        else float("nan")
    )
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    macro = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    return {
        "count": len(y_true),
        "loss": loss,
        "accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else float("nan"),
        "precision": float(macro[0]),
        "recall": float(macro[1]),
        # mean per-class recall: what accuracy would be on a balanced set
        "balanced_accuracy": float(macro[1]),
        "f1": float(macro[2]),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def metrics_table(metrics: dict[str, dict[str, Any]]) -> str:
    """The study's table layout, one row per split; recall is macro (= balanced accuracy)."""
    lines = [
        f"{'split':<11}{'n':>6}{'loss':>9}{'accuracy':>10}{'precision':>11}{'recall':>9}{'f1':>8}"
    ]
    for split, m in metrics.items():
        lines.append(
            f"{split:<11}{m['count']:>6}{m['loss']:>9.4f}{m['accuracy']:>10.4f}"
            f"{m['precision']:>11.4f}{m['recall']:>9.4f}{m['f1']:>8.4f}"
        )
    return "\n".join(lines)
