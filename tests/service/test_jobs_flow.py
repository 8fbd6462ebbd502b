"""A bulk job through API, queue and a real Celery worker, to results in every format."""

from __future__ import annotations

import csv
import io
import json

from shared.config import Settings
from tests.service.conftest import wait_until
from tests.service.helpers import jpeg, make_zip, multipart


def _wait_done(client, job_id: str, headers: dict, timeout_s: float = 90.0) -> dict:
    def finished():
        body = client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()
        return (
            body
            if body["status"] in {"succeeded", "partially_failed", "failed", "cancelled"}
            else None
        )

    return wait_until(finished, timeout_s, what=f"job {job_id} to finish")


def test_bulk_job_end_to_end(client, api_key: str, workers) -> None:
    headers = {"X-API-Key": api_key}
    files = [(f"img_{i:02d}.jpg", jpeg(i)) for i in range(10)]
    files.append(("broken.jpg", jpeg(99, size=256)[:1500]))  # truncated: fails in the worker
    archive = make_zip([("inside/a.jpg", jpeg(50)), ("inside/b.jpg", jpeg(51))])
    data = multipart(files)
    data["images"].append((io.BytesIO(archive), "more.zip"))
    response = client.post("/v1/jobs", data=data, headers=headers)
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["item_count"] == 13 and job["status"] in {"queued", "running"}

    workers.start()
    final = _wait_done(client, job["id"], headers)
    assert final["status"] == "partially_failed"
    assert final["counts"]["succeeded"] == 12 and final["counts"]["failed"] == 1
    assert final["progress"] == 1.0 and final["model_version"].startswith("m-")

    page = client.get(f"/v1/jobs/{job['id']}/results?limit=5", headers=headers).get_json()
    assert len(page["items"]) == 5 and page["next_offset"] == 5
    rest = client.get(
        f"/v1/jobs/{job['id']}/results?limit=100&offset=5", headers=headers
    ).get_json()
    items = page["items"] + rest["items"]
    assert [i["position"] for i in items] == list(range(13))
    broken = next(i for i in items if i["filename"] == "broken.jpg")
    assert broken["status"] == "failed" and "truncated" in broken["error"]
    good = [i for i in items if i["status"] == "succeeded"]
    assert all(i["pattern"] in {"checkered", "dotted", "solid", "striped"} for i in good)
    assert all(len(i["top_k"]) == 3 and 0 < i["confidence"] <= 1 for i in good)
    assert {i["filename"] for i in items} >= {"inside/a.jpg", "inside/b.jpg"}

    text = client.get(f"/v1/jobs/{job['id']}/results?format=csv", headers=headers)
    assert text.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(text.get_data(as_text=True))))
    assert len(rows) == 13 and rows[0]["filename"] == "img_00.jpg"
    lines = client.get(f"/v1/jobs/{job['id']}/results?format=jsonl", headers=headers)
    parsed = [json.loads(line) for line in lines.get_data(as_text=True).splitlines()]
    assert [p["id"] for p in parsed] == [i["id"] for i in items]

    item = client.get(f"/v1/items/{good[0]['id']}", headers=headers).get_json()
    assert item["probabilities"] and item["model_version"] == final["model_version"]


def test_identical_content_reuses_the_earlier_prediction(client, api_key: str, workers) -> None:
    headers = {"X-API-Key": api_key}
    workers.start()
    first = client.post(
        "/v1/jobs", data=multipart([("a.jpg", jpeg(7))]), headers=headers
    ).get_json()
    _wait_done(client, first["id"], headers)
    second = client.post(
        "/v1/jobs", data=multipart([("copy.jpg", jpeg(7))]), headers=headers
    ).get_json()
    _wait_done(client, second["id"], headers)
    a = client.get(f"/v1/jobs/{first['id']}/results", headers=headers).get_json()["items"][0]
    b = client.get(f"/v1/jobs/{second['id']}/results", headers=headers).get_json()["items"][0]
    assert b["pattern"] == a["pattern"] and b["probabilities"] == a["probabilities"]
    assert b["timings_ms"] == {"reused": 0}


def test_a_job_without_a_model_waits_then_runs(
    client, api_key: str, workers, service_settings: Settings, tmp_path, monkeypatch
) -> None:
    headers = {"X-API-Key": api_key}
    missing = tmp_path / "not-yet"
    workers.extra_env["SWATCH_MODEL_PATH"] = str(missing)
    workers.start()
    job = client.post(
        "/v1/jobs", data=multipart([("a.jpg", jpeg(1)), ("b.jpg", jpeg(2))]), headers=headers
    ).get_json()

    def waiting():
        body = client.get(f"/v1/jobs/{job['id']}", headers=headers).get_json()
        return body if (body["status_reason"] or "").startswith("waiting for a model") else None

    body = wait_until(waiting, 60, what="the job to say it waits for a model")
    assert body["status"] == "queued"
    missing.symlink_to(service_settings.model_path, target_is_directory=True)
    final = _wait_done(client, job["id"], headers)
    assert final["status"] == "succeeded" and final["status_reason"] is None


def test_cancel_and_delete(client, api_key: str, service_settings: Settings) -> None:
    headers = {"X-API-Key": api_key}
    job = client.post("/v1/jobs", data=multipart([("a.jpg", jpeg(1))]), headers=headers).get_json()
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).get_json()
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["cancelled"] == 1
    objects = service_settings.storage_path / "tenants"
    assert any(p.is_file() for p in objects.rglob("*"))
    assert client.delete(f"/v1/jobs/{job['id']}", headers=headers).status_code == 204
    assert not any(p.is_file() for p in objects.rglob("*"))
    assert client.get(f"/v1/jobs/{job['id']}", headers=headers).status_code == 404


def test_jobs_are_listed_newest_first(client, api_key: str) -> None:
    headers = {"X-API-Key": api_key}
    ids = [
        client.post(
            "/v1/jobs", data=multipart([(f"{i}.jpg", jpeg(i))]), headers=headers
        ).get_json()["id"]
        for i in range(3)
    ]
    page = client.get("/v1/jobs?limit=2", headers=headers).get_json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2] and page["next_offset"] == 2
    rest = client.get("/v1/jobs?limit=2&offset=2", headers=headers).get_json()
    assert [j["id"] for j in rest["jobs"]] == [ids[0]] and rest["next_offset"] is None
