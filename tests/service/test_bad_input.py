"""Every kind of bad input gets a clear 4xx, or a failed item with a reason; never a 500."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from shared.db.models import Item, Job
from shared.db.session import session_scope
from tests.patterns import png_claiming
from tests.service.helpers import jpeg, make_tar, make_zip, multipart


def _nothing_created(settings) -> bool:
    with session_scope(settings.database) as session:
        none_in_db = session.query(Job).count() == 0 and session.query(Item).count() == 0
    objects = settings.storage_path / "tenants"
    return none_in_db and not any(p.is_file() for p in objects.rglob("*"))


REFUSED = [
    # (name, request kwargs (made fresh: file objects are consumed), status, words)
    (
        "no files",
        lambda: {"data": {"note": "x"}, "content_type": "multipart/form-data"},
        400,
        "no images",
    ),
    ("json body", lambda: {"json": {"images": ["a.jpg"]}}, 415, "multipart"),
    ("plain text body", lambda: {"data": "hello", "content_type": "text/plain"}, 415, "multipart"),
    (
        "zip with ../ path",
        {"data": make_zip([("../../etc/evil.jpg", jpeg(1))]), "content_type": "application/zip"},
        400,
        "outside the archive",
    ),
    (
        "zip with absolute path",
        {"data": make_zip([("/abs/evil.jpg", jpeg(1))]), "content_type": "application/zip"},
        400,
        "outside",
    ),
    (
        "zip with a symlink",
        {
            "data": make_zip([("a.jpg", jpeg(1))], symlink="link.jpg"),
            "content_type": "application/zip",
        },
        400,
        "link",
    ),
    (
        "tar with ../ path",
        {"data": make_tar([("../evil.jpg", jpeg(1))]), "content_type": "application/x-tar"},
        400,
        "outside",
    ),
    (
        "tar with a symlink",
        {"data": make_tar([("a.jpg", jpeg(1))], link="l.jpg"), "content_type": "application/x-tar"},
        400,
        "link",
    ),
    (
        "corrupt zip",
        {"data": b"PK\x03\x04" + b"\x00" * 50, "content_type": "application/zip"},
        400,
        "zip",
    ),
    (
        "zip bomb",
        {
            "data": make_zip([(f"{i}.jpg", b"\x00" * 400_000) for i in range(4)]),
            "content_type": "application/zip",
        },
        413,
        "expands to more than",
    ),
    (
        "too many entries",
        {
            "data": make_zip([(f"{i}.jpg", jpeg(1)) for i in range(30)]),
            "content_type": "application/zip",
        },
        413,
        "more than 25 entries",
    ),
    (
        "file over the size limit",
        lambda: {"data": multipart([("big.jpg", b"\xff" * 700_000)])},
        413,
        "per-file limit",
    ),
    (
        "request over the size limit",
        lambda: {"data": multipart([(f"{i}.jpg", b"\xff" * 500_000) for i in range(6)])},
        413,
        "larger",
    ),
    (
        "callback to a host not allowed",
        lambda: {"data": multipart([("a.jpg", jpeg(1))], callback_url="http://evil.example/")},
        400,
        "not allowed",
    ),
    (
        "callback not http",
        lambda: {"data": multipart([("a.jpg", jpeg(1))], callback_url="file:///etc/passwd")},
        400,
        "http",
    ),
]


@pytest.fixture
def tight(service_settings):
    service_settings.max_file_bytes = 600_000
    service_settings.max_request_bytes = 2_500_000
    service_settings.max_images_per_job = 20
    service_settings.max_archive_entries = 25
    service_settings.max_archive_expanded_bytes = 1_000_000
    return service_settings


@pytest.mark.parametrize(
    ("name", "kwargs", "status", "words"), REFUSED, ids=[r[0] for r in REFUSED]
)
def test_refused_requests_create_nothing(
    client, api_key, tight, name, kwargs, status, words
) -> None:
    client.application.config["MAX_CONTENT_LENGTH"] = tight.max_request_bytes
    response = client.post(
        "/v1/jobs", headers={"X-API-Key": api_key}, **(kwargs() if callable(kwargs) else kwargs)
    )
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert words in response.get_json()["detail"]
    assert _nothing_created(tight)


def test_too_many_images(client, api_key, tight) -> None:
    files = [(f"{i}.jpg", jpeg(i)) for i in range(21)]
    response = client.post("/v1/jobs", data=multipart(files), headers={"X-API-Key": api_key})
    assert response.status_code == 413 and "per job" in response.get_json()["detail"]
    assert _nothing_created(tight)


def _bmp_header_only() -> bytes:
    image = io.BytesIO()
    Image.new("RGB", (8, 8)).save(image, "BMP")
    return image.getvalue()[:40]


ITEM_FAILURES = [
    ("empty.jpg", b"", "empty file"),
    ("notes.jpg", b"this is text, named like a jpeg", "not a recognised image"),
    ("script.png", b"#!/bin/sh\nrm -rf /\n", "not a recognised image"),
    ("bomb.png", png_claiming(60_000, 60_000), "limit"),
    ("cut.bmp", _bmp_header_only(), "image"),
]


def test_bad_files_in_a_good_submission_fail_alone(client, api_key) -> None:
    files = [("good.jpg", jpeg(3))] + [(n, d) for n, d, _ in ITEM_FAILURES]
    response = client.post("/v1/jobs", data=multipart(files), headers={"X-API-Key": api_key})
    assert response.status_code == 202
    job = response.get_json()
    assert job["counts"]["failed"] == len(ITEM_FAILURES) and job["counts"]["pending"] == 1
    items = client.get(f"/v1/jobs/{job['id']}/results", headers={"X-API-Key": api_key}).get_json()[
        "items"
    ]
    for item, (name, _, reason) in zip(items[1:], ITEM_FAILURES, strict=True):
        assert item["filename"] == name
        assert item["status"] == "failed" and reason in item["error"], item


@pytest.mark.parametrize(
    "path", ["/v1/jobs/nope", "/v1/jobs/nope/results", "/v1/items/nope", "/v1/items/nope/cutout"]
)
def test_unknown_ids_are_404(client, api_key, path) -> None:
    response = client.get(path, headers={"X-API-Key": api_key})
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


@pytest.mark.parametrize("query", ["format=xml", "limit=0", "limit=abc", "offset=-1", "top_k=1000"])
def test_bad_query_parameters(client, api_key, query) -> None:
    job = client.post(
        "/v1/jobs", data=multipart([("a.jpg", jpeg(1))]), headers={"X-API-Key": api_key}
    ).get_json()
    response = client.get(f"/v1/jobs/{job['id']}/results?{query}", headers={"X-API-Key": api_key})
    assert response.status_code == 400


def test_wrong_method_and_unknown_path(client, api_key) -> None:
    assert client.put("/v1/jobs", headers={"X-API-Key": api_key}).status_code == 405
    response = client.get("/v1/nothing-here", headers={"X-API-Key": api_key})
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


def test_idempotency_key_returns_the_same_job(client, api_key) -> None:
    headers = {"X-API-Key": api_key, "Idempotency-Key": "order-42"}
    first = client.post("/v1/jobs", data=multipart([("a.jpg", jpeg(1))]), headers=headers)
    again = client.post("/v1/jobs", data=multipart([("a.jpg", jpeg(1))]), headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.get_json()["id"] == again.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/v1/jobs", data=multipart([("b.jpg", jpeg(2))]), headers=headers)
    assert other.status_code == 422
    listed = client.get("/v1/jobs", headers={"X-API-Key": api_key}).get_json()["jobs"]
    assert len(listed) == 1
