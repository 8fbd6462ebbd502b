"""Thin Celery tasks: each calls a plain function and leaves retries to Celery."""

from __future__ import annotations

import logging

from sqlalchemy.exc import OperationalError

from shared.queue import CLASSIFY_TASK, SWEEP_TASK, WEBHOOK_TASK
from shared.storage import StorageUnavailable, open_store
from worker.celery_app import app, settings
from worker.pipeline import process_batch
from worker.sweeper import sweep
from worker.webhooks import WebhookFailed, deliver

log = logging.getLogger(__name__)
_store = None


def store():
    global _store
    if _store is None:
        _store = open_store(settings)
    return _store


@app.task(
    name=CLASSIFY_TASK,
    bind=True,
    autoretry_for=(StorageUnavailable, OperationalError),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=settings.task_max_retries,
)
def classify_batch(self, job_id: str, item_ids: list[str]) -> dict:
    report = process_batch(settings, store(), job_id, item_ids)
    for finished in report.finished_jobs:
        send_webhook.delay(finished)
    return report.__dict__


@app.task(name=SWEEP_TASK, ignore_result=True)
def sweep_task() -> dict:
    return sweep(settings, store()).__dict__


@app.task(
    name=WEBHOOK_TASK,
    bind=True,
    autoretry_for=(WebhookFailed,),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=settings.webhook_max_attempts - 1,
)
def send_webhook(self, job_id: str) -> str:
    return deliver(settings, job_id)
