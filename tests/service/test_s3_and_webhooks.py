"""The S3 backend against a real HTTP S3 endpoint (moto's server), and signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from shared.storage import S3Store, StorageUnavailable
from swatch.stack import free_port
from tests.service.conftest import wait_until
from tests.service.helpers import jpeg, multipart
from worker.webhooks import SIGNATURE_HEADER


@pytest.fixture
def s3_settings(service_settings, moto_server):
    service_settings.storage_backend = "s3"
    service_settings.s3_endpoint_url = moto_server
    service_settings.s3_bucket = f"swatch-{free_port()}"
    service_settings.s3_region = "us-east-1"
    service_settings.s3_access_key_id = "testing"
    service_settings.s3_secret_access_key = "testing"
    service_settings.s3_create_bucket = True
    return service_settings


def test_s3_store_round_trip_and_prefix_delete(s3_settings) -> None:
    store = S3Store(
        s3_settings.s3_bucket,
        s3_settings.s3_endpoint_url,
        "us-east-1",
        "testing",
        "testing",
        create_bucket=True,
    )
    store.put("tenants/t/jobs/j/originals/00000.jpg", b"abc", "image/jpeg")
    store.put("tenants/t/jobs/j/cutouts/x.png", b"png")
    store.put("tenants/t/jobs/other/originals/00000.jpg", b"keep")
    assert store.get("tenants/t/jobs/j/originals/00000.jpg") == b"abc"
    assert store.exists("tenants/t/jobs/j/cutouts/x.png")
    assert store.list("tenants/t/jobs/j/") == [
        "tenants/t/jobs/j/cutouts/x.png",
        "tenants/t/jobs/j/originals/00000.jpg",
    ]
    assert store.delete_prefix("tenants/t/jobs/j/") == 2
    assert not store.exists("tenants/t/jobs/j/cutouts/x.png")
    assert store.get("tenants/t/jobs/other/originals/00000.jpg") == b"keep"
    store.check()


def test_unreachable_s3_is_storage_unavailable() -> None:
    store = S3Store("swatch", f"http://127.0.0.1:{free_port()}", "us-east-1", "x", "y", timeout_s=1)
    with pytest.raises(StorageUnavailable):
        store.put("tenants/t/a.jpg", b"x")
    with pytest.raises(StorageUnavailable):
        store.check()


def test_a_job_through_s3(s3_settings, api_key, workers, monkeypatch) -> None:
    from api import create_app

    for name, value in (
        ("SWATCH_S3_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("SWATCH_S3_BUCKET", s3_settings.s3_bucket),
        ("SWATCH_S3_ENDPOINT_URL", s3_settings.s3_endpoint_url),
        ("SWATCH_STORAGE_BACKEND", "s3"),
    ):
        monkeypatch.setenv(name, value)
        workers.extra_env[name] = value
    client = create_app(s3_settings).test_client()
    headers = {"X-API-Key": api_key}
    job = client.post(
        "/v1/jobs", data=multipart([(f"{i}.jpg", jpeg(i)) for i in range(5)]), headers=headers
    ).get_json()
    workers.start()
    wait_until(
        lambda: (
            client.get(f"/v1/jobs/{job['id']}", headers=headers).get_json()["status"] == "succeeded"
        ),
        90,
        what="the S3 job",
    )
    store = client.application.extensions["swatch.store"]
    assert store.exists(f"tenants/{_tenant(s3_settings)}/jobs/{job['id']}/originals/00000.jpg")
    assert client.delete(f"/v1/jobs/{job['id']}", headers=headers).status_code == 204
    assert not store.exists(f"tenants/{_tenant(s3_settings)}/jobs/{job['id']}/originals/00000.jpg")


def _tenant(settings) -> str:
    from shared.db.models import Tenant
    from shared.db.session import session_scope

    with session_scope(settings.database) as session:
        return session.query(Tenant).filter_by(name="acme").one().id


class _Receiver(BaseHTTPRequestHandler):
    calls: ClassVar[list] = []
    fail_first = 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.calls.append((dict(self.headers), body))
        status = 500 if len(_Receiver.calls) <= _Receiver.fail_first else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_completion_webhook_is_signed_and_retried(client, api_key, workers) -> None:
    port = free_port()
    server = HTTPServer(("127.0.0.1", port), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.calls = []
    try:
        job = client.post(
            "/v1/jobs",
            data=multipart([("a.jpg", jpeg(1))], callback_url=f"http://127.0.0.1:{port}/cb"),
            headers={"X-API-Key": api_key},
        ).get_json()
        workers.start()
        wait_until(lambda: len(_Receiver.calls) >= 2, 90, what="a retried webhook")
    finally:
        server.shutdown()
    headers, body = _Receiver.calls[-1]
    payload = json.loads(body)
    assert payload["job_id"] == job["id"] and payload["status"] == "succeeded"
    timestamp = headers[SIGNATURE_HEADER].split(",")[0][2:]
    expected = hmac.new(b"test-secret", f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER].endswith(f"v1={expected}")
    final = wait_until(
        lambda: (
            (b := client.get(f"/v1/jobs/{job['id']}", headers={"X-API-Key": api_key}).get_json())[
                "callback_status"
            ]
            == "delivered"
            and b
        ),
        30,
        what="the delivery to be recorded",
    )
    assert final["callback_status"] == "delivered"
