"""A job's status, derived from its items' statuses (shared by the API and the workers)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.db.models import Item, ItemStatus, Job, JobStatus, utcnow


def item_counts(session: Session, job_id: str) -> dict[str, int]:
    rows = session.execute(
        select(Item.status, func.count()).where(Item.job_id == job_id).group_by(Item.status)
    ).all()
    counts = dict.fromkeys(ItemStatus.ALL, 0)
    counts.update({status: n for status, n in rows})
    return counts


def derive_status(job: Job, counts: dict[str, int]) -> str:
    if job.status == JobStatus.CANCELLED:
        return JobStatus.CANCELLED
    open_items = counts[ItemStatus.PENDING] + counts[ItemStatus.RUNNING]
    if open_items:
        started = (
            counts[ItemStatus.RUNNING] or counts[ItemStatus.SUCCEEDED] or job.started_at is not None
        )
        return JobStatus.RUNNING if started else JobStatus.QUEUED
    if counts[ItemStatus.FAILED] and counts[ItemStatus.SUCCEEDED]:
        return JobStatus.PARTIALLY_FAILED
    if counts[ItemStatus.FAILED]:
        return JobStatus.FAILED
    return JobStatus.SUCCEEDED


def refresh(session: Session, job: Job) -> tuple[str, bool]:
    """Update the job's status from its items; returns (status, whether it just finished)."""
    counts = item_counts(session, job.id)
    status = derive_status(job, counts)
    finished_now = status in JobStatus.FINAL and job.finished_at is None
    if status == JobStatus.RUNNING and job.started_at is None:
        job.started_at = utcnow()
    if finished_now:
        job.finished_at = utcnow()
        job.status_reason = None
    job.status = status
    return status, finished_now


def progress(counts: dict[str, int]) -> float:
    total = sum(counts.values())
    done = counts[ItemStatus.SUCCEEDED] + counts[ItemStatus.FAILED] + counts[ItemStatus.CANCELLED]
    return round(done / total, 4) if total else 1.0
