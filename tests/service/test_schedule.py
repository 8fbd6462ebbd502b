"""Scheduled retraining: runs only with new labels, never twice at once, promotes by policy."""

from __future__ import annotations

import redis

from shared.db.models import Item, TrainingRun
from shared.db.session import session_scope
from shared.registry import production
from shared.storage import open_store
from tests.service.helpers import jpeg, multipart
from trainer.schedule import LOCK_NAME, bootstrap_needed, scheduled_retrain
from worker.pipeline import process_batch

TINY = {"backbone": "tiny", "input_size": 32, "background_removal": False, "epochs": 1}


def _settings(service_settings, pattern_tree):
    return service_settings.model_copy(
        update={
            "retrain_dataset": pattern_tree,
            "retrain_params": {
                "options": TINY,
                "max_trials": 1,
                "trial_epochs": 1,
                "finetune": {"epochs": 1},
            },
        }
    )


def test_no_new_labels_means_no_run(service_settings, pattern_tree) -> None:
    settings = _settings(service_settings, pattern_tree)
    report = scheduled_retrain(settings, open_store(settings))
    assert not report.ran and "no new labelled images" in report.reason
    with session_scope(settings.database) as session:
        assert session.query(TrainingRun).count() == 0


def test_new_labels_run_the_pipeline_and_promote(
    client, api_key, service_settings, pattern_tree
) -> None:
    settings = _settings(service_settings, pattern_tree)
    store = open_store(settings)
    headers = {"X-API-Key": api_key}
    job = client.post(
        "/v1/jobs", data=multipart([("new.jpg", jpeg(5, "striped"))]), headers=headers
    ).get_json()
    with session_scope(settings.database) as session:
        item_id = session.query(Item).filter_by(job_id=job["id"]).one().id
    process_batch(settings, store, job["id"], [item_id])
    assert (
        client.post(
            f"/v1/items/{item_id}/label", json={"pattern": "striped"}, headers=headers
        ).status_code
        == 200
    )

    lock = redis.Redis.from_url(settings.redis_url).lock(LOCK_NAME, timeout=60)
    assert lock.acquire(blocking=False)
    assert "another scheduled retraining" in scheduled_retrain(settings, store).reason
    lock.release()

    report = scheduled_retrain(settings, store)
    assert report.ran and report.status == "succeeded", report
    with session_scope(settings.database) as session:
        run = session.get(TrainingRun, report.run_id)
        assert run.params["scheduled"] and run.params["new_labels"] == 1
        assert run.dataset["counts"]  # the labelled image is in the data
        total = sum(sum(c.values()) for c in run.dataset["counts"].values())
        assert total == 41
        assert production(session) is not None
    again = scheduled_retrain(settings, store)
    assert not again.ran and "no new labelled images" in again.reason


def test_bootstrap_is_needed_only_without_production(service_settings, pattern_tree) -> None:
    assert not bootstrap_needed(service_settings)  # no bootstrap dataset configured
    settings = service_settings.model_copy(update={"bootstrap_dataset": pattern_tree})
    assert bootstrap_needed(settings)
