"""The model registry: versions with a stage (candidate, production, archived).

A candidate becomes production only if it beats production on the same test split by the
configured metric (ties broken by the lower loss), or by an explicit promote. Rollback brings
back the model that was production before. Workers read the production model before every
batch, so a promotion takes effect without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.artifact import model_version, read_metadata
from shared.db.models import ModelVersion, utcnow

CANDIDATE, PRODUCTION, ARCHIVED = "candidate", "production", "archived"


class RegistryError(ValueError):
    pass


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    version: str
    previous: str | None = None


def register(session: Session, path: Path) -> ModelVersion:
    """Record a saved model folder as a candidate (once; registering again returns it)."""
    meta = read_metadata(path)
    version = model_version(path)
    row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if row is None:
        row = ModelVersion(
            version=version,
            uri=str(Path(path).resolve()),
            stage=CANDIDATE,
            class_names=meta.class_names,
            metrics={
                "splits": meta.metrics,
                "dataset_fingerprint": meta.dataset.get("fingerprint"),
                "recipe": meta.recipe.get("name"),
            },
        )
        session.add(row)
        session.flush()
    return row


def production(session: Session) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion)
        .where(ModelVersion.stage == PRODUCTION)
        .order_by(ModelVersion.promoted_at.desc())
    )


def _get(session: Session, version: str) -> ModelVersion:
    row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if row is None:
        raise RegistryError(f"no model version {version!r}")
    return row


def _score(row: ModelVersion, metric: str) -> tuple[float, float]:
    test = row.metrics.get("splits", {}).get("test")
    if not test or metric not in test:
        raise RegistryError(f"{row.version} has no test {metric}")
    return (test[metric], -test["loss"])


def _make_production(session: Session, row: ModelVersion) -> str | None:
    current = production(session)
    if current is not None and current.id != row.id:
        current.stage = ARCHIVED
    row.stage = PRODUCTION
    row.promoted_at = utcnow()
    return current.version if current is not None else None


def promote(
    session: Session, version: str, metric: str = "accuracy", force: bool = False
) -> Decision:
    row = _get(session, version)
    current = production(session)
    if current is not None and current.id == row.id:
        return Decision(False, "already production", version, version)
    if force or current is None:
        previous = _make_production(session, row)
        return Decision(
            True, "explicit promote" if force else "no production model yet", version, previous
        )
    same_split = row.metrics.get("dataset_fingerprint") == current.metrics.get(
        "dataset_fingerprint"
    )
    if not same_split:
        return Decision(
            False,
            "not comparable: trained on a different dataset or split; promote explicitly",
            version,
            current.version,
        )
    new, old = _score(row, metric), _score(current, metric)
    if new > old:
        previous = _make_production(session, row)
        return Decision(
            True,
            f"test {metric} {new[0]:.4f} beats {old[0]:.4f}"
            + (" (same, lower loss)" if new[0] == old[0] else ""),
            version,
            previous,
        )
    return Decision(
        False,
        f"test {metric} {new[0]:.4f} does not beat production's {old[0]:.4f}",
        version,
        current.version,
    )


def rollback(session: Session) -> Decision:
    """Archive production and bring back the one promoted before it."""
    current = production(session)
    if current is None:
        raise RegistryError("there is no production model to roll back")
    previous = session.scalar(
        select(ModelVersion)
        .where(
            ModelVersion.stage == ARCHIVED,
            ModelVersion.promoted_at.is_not(None),
            ModelVersion.id != current.id,
        )
        .order_by(ModelVersion.promoted_at.desc())
    )
    if previous is None:
        raise RegistryError("no earlier production model to roll back to")
    current.stage = ARCHIVED
    previous.stage = PRODUCTION
    previous.promoted_at = utcnow()
    return Decision(True, f"rolled back from {current.version}", previous.version, current.version)
