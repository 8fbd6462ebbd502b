"""API keys and tenant isolation."""

from __future__ import annotations

import pytest

from api.auth import create_tenant_key
from shared.db.session import session_scope
from tests.service.helpers import jpeg, multipart


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": "sw_wrong"},
        {"Authorization": "Bearer sw_wrong"},
        {"Authorization": "Basic abc"},
    ],
)
def test_missing_or_wrong_keys_are_401(client, api_key, headers) -> None:
    for method, path in (("get", "/v1/jobs"), ("post", "/v1/jobs"), ("get", "/v1/jobs/x")):
        response = getattr(client, method)(path, headers=headers)
        assert response.status_code == 401, (path, headers)
        assert response.mimetype == "application/problem+json"


def test_bearer_token_works_too(client, api_key) -> None:
    assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {api_key}"}).status_code == 200


def test_a_tenant_sees_only_its_own_jobs_and_items(client, api_key, service_settings) -> None:
    with session_scope(service_settings.database) as session:
        other_key = create_tenant_key(session, "globex")
    mine = {"X-API-Key": api_key}
    theirs = {"X-API-Key": other_key}
    job = client.post("/v1/jobs", data=multipart([("a.jpg", jpeg(1))]), headers=mine).get_json()
    item_id = client.get(f"/v1/jobs/{job['id']}/results", headers=mine).get_json()["items"][0]["id"]
    for path in (
        f"/v1/jobs/{job['id']}",
        f"/v1/jobs/{job['id']}/results",
        f"/v1/items/{item_id}",
        f"/v1/items/{item_id}/cutout",
    ):
        assert client.get(path, headers=theirs).status_code == 404, path
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=theirs).status_code == 404
    assert client.delete(f"/v1/jobs/{job['id']}", headers=theirs).status_code == 404
    assert client.get("/v1/jobs", headers=theirs).get_json()["jobs"] == []
    assert client.get(f"/v1/jobs/{job['id']}", headers=mine).status_code == 200


def test_keys_are_stored_hashed(api_key, service_settings) -> None:
    from shared.db.models import ApiKey

    with session_scope(service_settings.database) as session:
        stored = [row.key_hash for row in session.query(ApiKey)]
    assert api_key not in stored and len(stored[0]) == 64


def test_health_readiness_and_docs(client, redis_server) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"] == {
        "database": "ok",
        "redis": "ok",
        "storage": "ok",
    }
    redis_server.stop()
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.get_json()["checks"]["redis"].startswith("unreachable")
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.") and "/v1/jobs/{job_id}/results" in spec["paths"]
    assert b"Swatch API" in client.get("/docs").data
