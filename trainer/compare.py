"""The study's backbone comparison: each backbone with the same head, side by side.

Head (Table 1 of the study): Flatten, Dense(256, relu), Dropout(0.5), softmax; Adam 1e-3,
15 epochs. A backbone without pretrained weights here is reported as skipped with the
reason, never compared as if it were pretrained.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from shared.backbones import PRETRAINED_BACKBONES, BackboneError, get_backbone, resolve_weights
from shared.config import Settings, get_settings
from shared.progress import ProgressFactory, silent
from trainer.recipes import Recipe, get_recipe
from trainer.training import train


def compare(
    data_dir: Path | str,
    out_dir: Path | str,
    *,
    backbones: tuple[str, ...] = PRETRAINED_BACKBONES,
    base: Recipe | None = None,
    seed: int = 0,
    settings: Settings | None = None,
    progress: ProgressFactory = silent,
) -> list[dict[str, Any]]:
    settings = settings or get_settings()
    base = base or get_recipe("compare")
    rows: list[dict[str, Any]] = []
    for name in backbones:
        spec = get_backbone(name)
        try:
            weights = resolve_weights(spec, settings.backbone_weights)
            if weights is None and name != "tiny":
                raise BackboneError("no pretrained weights configured")
            recipe = replace(base, backbone=name)
            result = train(
                data_dir,
                Path(out_dir) / name,
                recipe,
                seed=seed,
                settings=settings,
                progress=progress,
            )
        except BackboneError as exc:
            rows.append({"backbone": name, "status": "skipped", "reason": str(exc)})
            continue
        metrics = result.metrics
        rows.append(
            {
                "backbone": name,
                "status": "trained",
                "model": str(result.path),
                "train_accuracy": metrics["train"]["accuracy"],
                "validation_accuracy": metrics.get("validation", {}).get("accuracy"),
                "test_accuracy": metrics.get("test", {}).get("accuracy"),
                "test_balanced_accuracy": metrics.get("test", {}).get("balanced_accuracy"),
                "timings_s": result.timings,
            }
        )
    return rows


def comparison_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'backbone':<14}{'train acc':>10}{'test acc':>10}  note"]
    for row in rows:
        if row["status"] == "trained":
            lines.append(
                f"{row['backbone']:<14}{row['train_accuracy']:>10.4f}"
                f"{row['test_accuracy'] or 0:>10.4f}"
            )
        else:
            lines.append(f"{row['backbone']:<14}{'-':>10}{'-':>10}  skipped: {row['reason']}")
    return "\n".join(lines)
