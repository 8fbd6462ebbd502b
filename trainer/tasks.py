"""Thin Celery tasks of the trainer."""

from __future__ import annotations

from shared.queue import RETRAIN_TASK, TRAINING_RUN_TASK
from shared.storage import open_store
from trainer.celery_app import app, settings
from trainer.runs import execute
from trainer.schedule import scheduled_retrain


@app.task(name=TRAINING_RUN_TASK, acks_late=True)
def training_run(run_id: str) -> str:
    return execute(settings, open_store(settings), run_id)


@app.task(name=RETRAIN_TASK, acks_late=False)
def retrain() -> dict:
    return scheduled_retrain(settings, open_store(settings)).__dict__
