"""Scheduled retraining and the bootstrap model: training that starts itself."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from shared.config import Settings
from shared.db.models import Item, TrainingRun, utcnow
from shared.db.session import session_scope
from shared.registry import production
from shared.storage import ObjectStore
from trainer.runs import create_run, execute

log = logging.getLogger(__name__)
LOCK_NAME = "swatch:retrain-lock"


@dataclass
class RetrainReport:
    ran: bool
    reason: str
    run_id: str | None = None
    status: str | None = None


def _last_scheduled(settings: Settings):
    with session_scope(settings.database) as session:
        runs = session.scalars(
            select(TrainingRun)
            .where(TrainingRun.parent_id.is_(None))
            .order_by(TrainingRun.created_at.desc())
        ).all()
        for run in runs:
            if run.params.get("scheduled"):
                return run.created_at
    return None


def _labelled_since(settings: Settings, since) -> list[tuple[str, str, str]]:
    with session_scope(settings.database) as session:
        query = select(Item.id, Item.label, Item.object_key).where(Item.label.is_not(None))
        if since is not None:
            query = query.where(Item.labelled_at > since)
        return [tuple(row) for row in session.execute(query).all()]


def build_dataset(settings: Settings, store: ObjectStore, base: Path | None, folder: Path) -> Path:
    """The base class-per-folder tree plus every labelled item, under ``folder``."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if base is not None:
        for class_dir in sorted(p for p in Path(base).iterdir() if p.is_dir()):
            (folder / class_dir.name).symlink_to(class_dir.resolve(), target_is_directory=True)
    for item_id, label, key in _labelled_since(settings, None):
        target = folder / label
        if target.is_symlink():  # a base class gets labelled images too: copy it
            source = target.resolve()
            target.unlink()
            shutil.copytree(source, target)
        target.mkdir(exist_ok=True)
        suffix = Path(key).suffix if key else ".jpg"
        (target / f"label-{item_id}{suffix}").write_bytes(store.get(key))
    return folder


def scheduled_retrain(settings: Settings, store: ObjectStore) -> RetrainReport:
    """Run the pipeline if labels arrived since the last scheduled run (or always, by
    configuration), then promote by the policy. Two schedules never overlap."""
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    lock = client.lock(LOCK_NAME, timeout=settings.training_visibility_timeout_s, blocking=False)
    if not lock.acquire(blocking=False):
        return RetrainReport(False, "another scheduled retraining is running")
    try:
        new = _labelled_since(settings, _last_scheduled(settings))
        if not new and not settings.retrain_always:
            return RetrainReport(False, "no new labelled images since the last run")
        if settings.retrain_dataset is None and not new:
            return RetrainReport(False, "no dataset configured (SWATCH_RETRAIN_DATASET)")
        stamp = utcnow().strftime("%Y%m%dT%H%M%S")
        data = build_dataset(
            settings,
            store,
            settings.retrain_dataset,
            settings.home / "datasets" / f"retrain-{stamp}",
        )
        params = {
            **settings.retrain_params,
            "dataset": str(data),
            "scheduled": True,
            "promote": True,
            "new_labels": len(new),
        }
        run_id = create_run(settings, "pipeline", params)
        status = execute(settings, store, run_id)
        return RetrainReport(True, f"{len(new)} new labelled images", run_id, status)
    finally:
        lock.release()


def bootstrap_needed(settings: Settings) -> bool:
    if settings.bootstrap_dataset is None:
        return False
    with session_scope(settings.database) as session:
        if production(session) is not None:
            return False
        pending = session.scalar(
            select(TrainingRun).where(TrainingRun.status.in_(["queued", "running"])).limit(1)
        )
    return pending is None


STORAGE_SCHEME = "storage://"


def resolve_dataset(settings: Settings, store: ObjectStore, dataset: str) -> Path:
    """A local folder as it is; ``storage://<prefix>`` (class-per-folder objects) copied to a
    local folder once per content, so a run reads files like any other."""
    if not dataset.startswith(STORAGE_SCHEME):
        return Path(dataset)
    import hashlib

    prefix = dataset[len(STORAGE_SCHEME) :].strip("/") + "/"
    keys = store.list(prefix)
    if not keys:
        raise ValueError(f"no objects under {dataset}")
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
    folder = settings.home / "datasets" / f"storage-{digest}"
    if not folder.is_dir():
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        for key in keys:
            relative = key[len(prefix) :]
            if "/" not in relative:
                continue  # files beside the class folders are not labelled
            target = tmp / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(store.get(key))
        tmp.rename(folder)
    return folder
