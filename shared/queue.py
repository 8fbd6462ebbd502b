"""The queue contract between services: task names, queues and the Celery configuration.

The API sends tasks by name through a bare Celery app and never imports worker code.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from shared.config import Settings

CLASSIFY_QUEUE = "classify"
TRAINING_QUEUE = "training"
CLASSIFY_TASK = "swatch.classify_batch"
TRAINING_RUN_TASK = "swatch.training_run"
RETRAIN_TASK = "swatch.scheduled_retrain"
SWEEP_TASK = "swatch.sweep"
WEBHOOK_TASK = "swatch.send_webhook"


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.redis_url,
        # Job state lives in the database; Celery results are never read.
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout_s},
        "broker_connection_retry_on_startup": True,
        "task_default_queue": CLASSIFY_QUEUE,
        "task_routes": {
            CLASSIFY_TASK: {"queue": CLASSIFY_QUEUE},
            SWEEP_TASK: {"queue": CLASSIFY_QUEUE},
            WEBHOOK_TASK: {"queue": CLASSIFY_QUEUE},
            # Training never blocks classification: its own queue and workers.
            TRAINING_RUN_TASK: {"queue": TRAINING_QUEUE},
            RETRAIN_TASK: {"queue": TRAINING_QUEUE},
        },
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
    }


@lru_cache(maxsize=4)
def _client(redis_url: str, visibility_timeout_s: int) -> Any:
    from celery import Celery

    app = Celery("swatch-client")
    app.conf.update(
        celery_config(Settings(redis_url=redis_url, visibility_timeout_s=visibility_timeout_s))
    )
    return app


def send_task(
    settings: Settings, name: str, args: list[Any], countdown: float | None = None
) -> None:
    """Enqueue by name; raises the broker's error if Redis cannot be reached."""
    app = _client(settings.redis_url, settings.visibility_timeout_s)
    app.send_task(
        name,
        args=args,
        countdown=countdown,
        retry=True,
        retry_policy={
            "max_retries": 2,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 1.0,
        },
    )
