"""Classifying a batch of items: plain functions, tested without Celery.

Idempotent by construction: only pending or running items are touched, and each result is
written with a guard on the item's status, so a redelivered task never doubles a result.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.background import BackgroundRemovalError
from shared.config import Settings
from shared.db.models import Item, ItemStatus, Job, JobStatus, utcnow
from shared.db.session import session_scope
from shared.images import ImageError
from shared.jobstate import refresh
from shared.storage import ObjectNotFound, ObjectStore, job_prefix
from worker.models import MODELS, NoModel

log = logging.getLogger(__name__)
OPEN = (ItemStatus.PENDING, ItemStatus.RUNNING)


@dataclass
class BatchReport:
    succeeded: int = 0
    failed: int = 0
    reused: int = 0
    skipped: int = 0
    waiting: str | None = None
    finished_jobs: list[str] = field(default_factory=list)


def _claim(session: Session, job_id: str, item_ids: list[str], version: str) -> list[Item]:
    now = utcnow()
    items = session.scalars(
        select(Item)
        .where(Item.id.in_(item_ids), Item.job_id == job_id, Item.status.in_(OPEN))
        .order_by(Item.position)
    ).all()
    for item in items:
        item.status, item.heartbeat_at = ItemStatus.RUNNING, now
        item.attempts += 1
    job = session.get(Job, job_id)
    job.model_version = version
    job.status_reason = None
    refresh(session, job)
    return list(items)


def _finish(session: Session, item_id: str, **values) -> bool:
    """Write a result unless the item was cancelled or finished meanwhile."""
    result = session.execute(
        update(Item)
        .where(Item.id == item_id, Item.status == ItemStatus.RUNNING)
        .values(finished_at=utcnow(), **values)
    )
    return result.rowcount == 1


def _reusable(session: Session, item: Item, version: str) -> Item | None:
    if not item.sha256:
        return None
    return session.scalar(
        select(Item)
        .where(
            Item.sha256 == item.sha256,
            Item.model_version == version,
            Item.status == ItemStatus.SUCCEEDED,
            Item.tenant_id == item.tenant_id,
            Item.id != item.id,
        )
        .limit(1)
    )


def process_batch(
    settings: Settings, store: ObjectStore, job_id: str, item_ids: list[str]
) -> BatchReport:
    report = BatchReport()
    with session_scope(settings.database) as session:
        job = session.get(Job, job_id)
        if job is None or job.status in JobStatus.FINAL:
            report.skipped = len(item_ids)
            return report
    try:
        classifier, version = MODELS.get(settings, store)
    except NoModel as exc:
        _wait_for(settings, job_id, item_ids, str(exc), held=ItemStatus.PENDING)
        report.waiting = str(exc)
        return report

    with session_scope(settings.database) as session:
        items = _claim(session, job_id, item_ids, version)
        work = []
        for item in items:
            if item.attempts > settings.task_max_retries + 1:
                _finish(
                    session,
                    item.id,
                    status=ItemStatus.FAILED,
                    error=f"gave up after {item.attempts - 1} attempts",
                )
                report.failed += 1
                continue
            earlier = _reusable(session, item, version)
            if earlier is not None:
                _finish(
                    session,
                    item.id,
                    status=ItemStatus.SUCCEEDED,
                    pattern=earlier.pattern,
                    confidence=earlier.confidence,
                    probabilities=earlier.probabilities,
                    model_version=version,
                    reused_from=earlier.id,
                    cutout_key=earlier.cutout_key,
                    timings_ms={"reused": 0},
                )
                report.reused += 1
                continue
            work.append((item.id, item.object_key, item.tenant_id))
    report.skipped = len(item_ids) - len(items)

    prepared, cutouts, timings = [], {}, {}
    for item_id, key, tenant_id in work:
        start = time.perf_counter()
        try:
            data = store.get(key) if key else b""
            views, cutout = classifier.prepare_with_mask(data)
        except BackgroundRemovalError as exc:
            # Configuration, not the image: the items wait, the job says why.
            _wait_for(
                settings,
                job_id,
                [i for i, _, _ in work],
                f"waiting: {exc}",
                held=ItemStatus.RUNNING,
            )
            report.waiting = str(exc)
            return report
        except ObjectNotFound:
            _fail(settings, item_id, "the uploaded file is gone from storage")
            report.failed += 1
            continue
        except ImageError as exc:
            _fail(settings, item_id, str(exc))
            report.failed += 1
            continue
        timings[item_id] = {"prepare": round(1000 * (time.perf_counter() - start), 1)}
        if cutout is not None:
            prefix = job_prefix(tenant_id, job_id)
            cutouts[item_id] = (f"{prefix}cutouts/{item_id}.png", f"{prefix}masks/{item_id}.png")
            store.put(cutouts[item_id][0], _png(cutout), "image/png")
            store.put(cutouts[item_id][1], _png(cutout.getchannel("A")), "image/png")
        prepared.append((item_id, views))
        with session_scope(settings.database) as session:
            session.execute(update(Item).where(Item.id == item_id).values(heartbeat_at=utcnow()))

    if prepared:
        start = time.perf_counter()
        probs = classifier.predict_views(
            [v for _, v in prepared], batch_size=settings.task_batch_size
        )
        per_image = round(1000 * (time.perf_counter() - start) / len(prepared), 1)
        names = classifier.class_names
        with session_scope(settings.database) as session:
            for (item_id, _), row in zip(prepared, probs, strict=True):
                best = int(row.argmax())
                done = _finish(
                    session,
                    item_id,
                    status=ItemStatus.SUCCEEDED,
                    pattern=names[best],
                    confidence=float(row[best]),
                    probabilities={n: float(p) for n, p in zip(names, row, strict=True)},
                    model_version=version,
                    cutout_key=cutouts.get(item_id, (None, None))[0],
                    mask_key=cutouts.get(item_id, (None, None))[1],
                    timings_ms={**timings[item_id], "classify": per_image},
                )
                report.succeeded += int(done)

    with session_scope(settings.database) as session:
        job = session.get(Job, job_id)
        if job is not None:
            _, finished = refresh(session, job)
            if finished and job.callback_url:
                report.finished_jobs.append(job.id)
    return report


def _wait_for(
    settings: Settings, job_id: str, item_ids: list[str], reason: str, *, held: str
) -> None:
    """Those of ``item_ids`` in status ``held`` (this batch's) go back to pending and unsent:
    the sweeper sends them again once the cause is gone. The job says why it waits."""
    with session_scope(settings.database) as session:
        session.execute(
            update(Item)
            .where(Item.id.in_(item_ids), Item.status == held)
            .values(status=ItemStatus.PENDING, dispatched_at=None)
        )
        job = session.get(Job, job_id)
        job.status_reason = reason
        refresh(session, job)


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _fail(settings: Settings, item_id: str, reason: str) -> None:
    with session_scope(settings.database) as session:
        _finish(session, item_id, status=ItemStatus.FAILED, error=reason)
