"""The Celery application of the classification workers.

celery -A worker.celery_app worker -Q classify --beat
"""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import worker_process_init

from shared.config import get_settings
from shared.db.session import dispose_after_fork
from shared.queue import SWEEP_TASK, celery_config

log = logging.getLogger(__name__)
settings = get_settings()

app = Celery("swatch", include=["worker.tasks"])
app.conf.update(celery_config(settings))
app.conf.beat_schedule = {
    "sweep": {"task": SWEEP_TASK, "schedule": settings.sweep_interval_s},
}


@worker_process_init.connect
def _after_fork(**_kwargs) -> None:
    # Each child opens its own database connections and loads the model lazily, on its
    # first task: never in the parent, so nothing heavy is shared across fork().
    dispose_after_fork(settings.database)
    _limit_gpu_memory()


def _limit_gpu_memory() -> None:
    try:
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            # TensorFlow and onnxruntime (rembg) share the card: take memory as needed.
            tf.config.experimental.set_memory_growth(gpu, True)
    except Exception:  # no TensorFlow GPU support here
        log.debug("no GPU set-up", exc_info=True)
