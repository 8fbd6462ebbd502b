"""Sending a job's pending items to the workers, in batches of ``task_batch_size``."""

from __future__ import annotations

import logging

from sqlalchemy import update
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.db.models import Item, utcnow
from shared.queue import CLASSIFY_TASK, send_task

log = logging.getLogger(__name__)


def dispatch(settings: Settings, session: Session, job_id: str, item_ids: list[str]) -> int:
    """Enqueue the items; marks each batch dispatched only once the broker took it.

    Raises the broker's error on failure; items not yet sent stay undispatched, and the
    sweeper sends them later.
    """
    sent = 0
    size = max(1, settings.task_batch_size)
    for start in range(0, len(item_ids), size):
        batch = item_ids[start : start + size]
        send_task(settings, CLASSIFY_TASK, [job_id, batch])
        session.execute(update(Item).where(Item.id.in_(batch)).values(dispatched_at=utcnow()))
        session.commit()
        sent += len(batch)
    return sent
