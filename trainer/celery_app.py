"""The trainer's Celery application: its own queue, so training never blocks classifying.

celery -A trainer.celery_app worker -Q training --concurrency 1
celery -A trainer.celery_app beat        (scheduled retraining, when configured)
"""

from __future__ import annotations

from celery import Celery
from celery.schedules import crontab
from celery.signals import worker_process_init

from shared.config import get_settings
from shared.db.session import dispose_after_fork
from shared.queue import RETRAIN_TASK, TRAINING_QUEUE, celery_config

settings = get_settings()

app = Celery("swatch-trainer", include=["trainer.tasks"])
app.conf.update(celery_config(settings))
app.conf.update(
    task_default_queue=TRAINING_QUEUE,
    # A run can take hours: Redis must not hand it to a second worker meanwhile.
    broker_transport_options={"visibility_timeout": settings.training_visibility_timeout_s},
)
if settings.retrain_cron:
    minute, hour, day, month, weekday = settings.retrain_cron.split()
    app.conf.beat_schedule = {
        "retrain": {"task": RETRAIN_TASK, "schedule": crontab(minute, hour, day, month, weekday)},
    }


@worker_process_init.connect
def _after_fork(**_kwargs) -> None:
    dispose_after_fork(settings.database)
