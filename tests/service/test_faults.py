"""No data loss under faults, with real processes: workers killed, Redis restarted,
storage down."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from shared.db.models import Item, ItemStatus, Job
from shared.db.session import session_scope
from shared.storage import StorageUnavailable
from tests.service.conftest import wait_until
from tests.service.helpers import jpeg, multipart


def _counts(settings, job_id: str) -> dict[str, int]:
    with session_scope(settings.database) as session:
        rows = session.execute(
            select(Item.status, func.count()).where(Item.job_id == job_id).group_by(Item.status)
        ).all()
    return dict(rows)


def _submit(client, api_key: str, n: int, size: int = 256) -> str:
    files = [(f"{i:03d}.jpg", jpeg(i, size=size)) for i in range(n)]
    response = client.post("/v1/jobs", data=multipart(files), headers={"X-API-Key": api_key})
    assert response.status_code == 202
    return response.get_json()["id"]


def _assert_exactly_one_result_each(settings, job_id: str, n: int) -> None:
    with session_scope(settings.database) as session:
        items = session.scalars(select(Item).where(Item.job_id == job_id)).all()
        job = session.get(Job, job_id)
        assert job.status == "succeeded", job.status
    assert len(items) == n
    assert all(i.status == ItemStatus.SUCCEEDED and i.pattern and i.finished_at for i in items)
    assert len({i.position for i in items}) == n


def _succeeded(settings, job_id: str) -> int:
    return _counts(settings, job_id).get("succeeded", 0)


def _start_a_long_job(client, api_key: str, workers, settings, n: int) -> str:
    """Submit n images, start a worker, and return once it is well into the job."""
    job_id = _submit(client, api_key, n)
    workers.start()
    wait_until(
        lambda: _succeeded(settings, job_id) >= 8,
        90,
        interval_s=0.05,
        what="the worker to get going",
    )
    return job_id


def test_worker_killed_mid_job_then_restarted(client, api_key, workers, service_settings) -> None:
    n = 120
    job_id = _start_a_long_job(client, api_key, workers, service_settings, n)
    workers.kill()
    before = _counts(service_settings, job_id)
    assert before.get("succeeded", 0) < n, "the job finished before the kill; make it longer"
    time.sleep(1)
    workers.start()
    wait_until(
        lambda: _counts(service_settings, job_id).get("succeeded", 0) == n,
        120,
        what="the job to finish after the restart",
    )
    _assert_exactly_one_result_each(service_settings, job_id, n)


def test_redis_restarted_mid_job(client, api_key, workers, service_settings, redis_server) -> None:
    n = 120
    job_id = _start_a_long_job(client, api_key, workers, service_settings, n)
    redis_server.stop()
    time.sleep(2)
    assert _counts(service_settings, job_id).get("succeeded", 0) < n
    redis_server.start()
    wait_until(
        lambda: _counts(service_settings, job_id).get("succeeded", 0) == n,
        150,
        what="the job to finish after Redis came back",
    )
    _assert_exactly_one_result_each(service_settings, job_id, n)


def test_redis_down_at_submission_is_accepted_and_sent_later(
    client, api_key, workers, service_settings, redis_server
) -> None:
    redis_server.stop()
    job_id = _submit(client, api_key, 5, size=64)
    job = client.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": api_key}).get_json()
    assert job["status"] == "queued" and "waiting for the queue" in job["status_reason"]
    redis_server.start()
    workers.start()
    wait_until(
        lambda: _counts(service_settings, job_id).get("succeeded", 0) == 5,
        90,
        what="the sweeper to send the job",
    )
    _assert_exactly_one_result_each(service_settings, job_id, 5)


class _DownStore:
    def __init__(self, store) -> None:
        self.store = store
        self.puts = 0

    def put(self, key, data, content_type="application/octet-stream"):
        self.puts += 1
        if self.puts > 2:  # fails part-way through the upload
            raise StorageUnavailable("connection refused")
        return self.store.put(key, data, content_type)

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_storage_down_during_submission_is_503_with_nothing_half_created(
    client, api_key, service_settings
) -> None:
    store = client.application.extensions["swatch.store"]
    client.application.extensions["swatch.store"] = _DownStore(store)
    files = [(f"{i}.jpg", jpeg(i)) for i in range(6)]
    response = client.post("/v1/jobs", data=multipart(files), headers={"X-API-Key": api_key})
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "nothing was created" in response.get_json()["detail"]
    with session_scope(service_settings.database) as session:
        assert session.query(Job).count() == 0 and session.query(Item).count() == 0
    assert not any(p.is_file() for p in (service_settings.storage_path / "tenants").rglob("*"))
    client.application.extensions["swatch.store"] = store
    assert (
        client.post("/v1/jobs", data=multipart(files), headers={"X-API-Key": api_key}).status_code
        == 202
    )
