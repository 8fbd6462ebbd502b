"""The safety net that makes lost messages harmless.

Redis may restart and drop queued messages; a worker may die holding a task whose message
Redis would only hand out again after the visibility timeout. The sweeper, run by Celery beat,
re-sends what the database says is unfinished: running items with no sign of life, and
pending items never sent, or sent long ago while the queue is empty.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update

from shared.config import Settings
from shared.db.models import Item, ItemStatus, Job, JobStatus, utcnow
from shared.db.session import session_scope
from shared.dispatch import dispatch
from shared.jobstate import refresh
from shared.queue import CLASSIFY_QUEUE
from shared.storage import ObjectStore
from worker.models import model_ready

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    revived: int = 0
    dispatched: int = 0
    waiting_for_model: bool = False


def queue_length(settings: Settings) -> int:
    import redis

    return int(redis.Redis.from_url(settings.redis_url, socket_timeout=5).llen(CLASSIFY_QUEUE))


def sweep(settings: Settings, store: ObjectStore) -> SweepReport:
    report = SweepReport()
    now = utcnow()
    with session_scope(settings.database) as session:
        stale = now - timedelta(seconds=settings.stale_running_after_s)
        result = session.execute(
            update(Item)
            .where(
                Item.status == ItemStatus.RUNNING,
                or_(Item.heartbeat_at.is_(None), Item.heartbeat_at < stale),
            )
            .values(status=ItemStatus.PENDING, dispatched_at=None)
        )
        report.revived = result.rowcount or 0
    if not model_ready(settings, store):
        report.waiting_for_model = True
        return report
    resend_before = now - timedelta(seconds=settings.redispatch_after_s)
    queue_empty = queue_length(settings) == 0
    with session_scope(settings.database) as session:
        condition = Item.dispatched_at.is_(None)
        if queue_empty:
            condition = or_(condition, Item.dispatched_at < resend_before)
        rows = session.execute(
            select(Item.job_id, Item.id)
            .join(Job, Job.id == Item.job_id)
            .where(
                Item.status == ItemStatus.PENDING,
                condition,
                Job.status.not_in(list(JobStatus.FINAL)),
            )
            .order_by(Item.job_id, Item.position)
        ).all()
        by_job: dict[str, list[str]] = {}
        for job_id, item_id in rows:
            by_job.setdefault(job_id, []).append(item_id)
        for job_id, item_ids in by_job.items():
            report.dispatched += dispatch(settings, session, job_id, item_ids)
        # Jobs whose items all finished but whose status lagged (a crash between writes).
        for job in session.scalars(select(Job).where(Job.status.not_in(list(JobStatus.FINAL)))):
            refresh(session, job)
    if report.revived or report.dispatched:
        log.info("sweep: %d stale items revived, %d items sent", report.revived, report.dispatched)
    return report
