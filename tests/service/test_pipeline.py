"""The worker's batch pipeline as a plain function, without Celery."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from PIL import Image

from shared.config import Settings
from shared.db.models import Item
from shared.db.session import session_scope
from shared.storage import open_store
from tests.conftest import SHARED_DATASETS, SHARED_MODELS, needs_shared
from tests.patterns import make_tree
from tests.service.helpers import jpeg, multipart
from worker.models import MODELS
from worker.pipeline import process_batch


def _item_ids(settings: Settings, job_id: str) -> list[str]:
    with session_scope(settings.database) as session:
        return [i.id for i in session.query(Item).filter_by(job_id=job_id).order_by(Item.position)]


def test_batches_are_idempotent(client, api_key, service_settings) -> None:
    headers = {"X-API-Key": api_key}
    job = client.post(
        "/v1/jobs", data=multipart([(f"{i}.jpg", jpeg(i)) for i in range(3)]), headers=headers
    ).get_json()
    ids = _item_ids(service_settings, job["id"])
    store = open_store(service_settings)
    first = process_batch(service_settings, store, job["id"], ids)
    assert first.succeeded == 3
    again = process_batch(service_settings, store, job["id"], ids)
    assert again.succeeded == 0 and again.skipped == 3  # a redelivered task changes nothing
    body = client.get(f"/v1/jobs/{job['id']}", headers=headers).get_json()
    assert body["status"] == "succeeded" and body["counts"]["succeeded"] == 3


def test_a_cancelled_job_is_not_processed(client, api_key, service_settings) -> None:
    headers = {"X-API-Key": api_key}
    job = client.post("/v1/jobs", data=multipart([("a.jpg", jpeg(1))]), headers=headers).get_json()
    client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    report = process_batch(
        service_settings,
        open_store(service_settings),
        job["id"],
        _item_ids(service_settings, job["id"]),
    )
    assert report.succeeded == 0 and report.skipped == 1


@needs_shared
@pytest.mark.shared_data
def test_cutouts_and_masks_are_stored_with_real_rembg(
    client, api_key, service_settings, tmp_path
) -> None:
    from trainer.recipes import get_recipe
    from trainer.training import train

    settings = service_settings.model_copy(update={"u2net_home": SHARED_MODELS})
    data = make_tree(tmp_path / "data", per_class=4)
    recipe = replace(get_recipe("pooled"), backbone="tiny", input_size=32)
    model = train(data, tmp_path / "model", recipe, settings=settings).path
    settings = settings.model_copy(update={"model_path": model})
    MODELS.clear()
    photo = next((SHARED_DATASETS / "dress-patterns" / "floral").iterdir()).read_bytes()
    headers = {"X-API-Key": api_key}
    job = client.post(
        "/v1/jobs", data=multipart([("dress.jpg", photo)]), headers=headers
    ).get_json()
    report = process_batch(
        settings, open_store(settings), job["id"], _item_ids(settings, job["id"])
    )
    MODELS.clear()
    assert report.succeeded == 1
    item = client.get(f"/v1/jobs/{job['id']}/results", headers=headers).get_json()["items"][0]
    cutout = client.get(f"/v1/items/{item['id']}/cutout", headers=headers)
    assert cutout.status_code == 200 and cutout.mimetype == "image/png"
    image = Image.open(io.BytesIO(cutout.data))
    assert image.mode == "RGBA"
    alpha = image.getchannel("A")
    assert 0 < sum(alpha.histogram()[128:]) < alpha.width * alpha.height
    with session_scope(settings.database) as session:
        assert session.get(Item, item["id"]).mask_key.endswith(".png")


def test_a_promoted_model_takes_over_between_batches(
    client, api_key, service_settings, tmp_path
) -> None:
    from shared.registry import promote, register
    from trainer.recipes import get_recipe
    from trainer.training import train

    headers = {"X-API-Key": api_key}
    job = client.post(
        "/v1/jobs", data=multipart([(f"{i}.jpg", jpeg(i)) for i in range(4)]), headers=headers
    ).get_json()
    ids = _item_ids(service_settings, job["id"])
    store = open_store(service_settings)
    process_batch(service_settings, store, job["id"], ids[:2])
    recipe = replace(get_recipe("pooled"), backbone="tiny", input_size=32, background_removal=None)
    newer = train(
        make_tree(tmp_path / "d", 5), tmp_path / "newer", recipe, settings=service_settings
    ).path
    with session_scope(service_settings.database) as session:
        version = register(session, newer).version
        assert promote(session, version).promoted
    process_batch(service_settings, store, job["id"], ids[2:])
    items = client.get(f"/v1/jobs/{job['id']}/results", headers=headers).get_json()["items"]
    versions = [i["model_version"] for i in items]
    assert versions[0] == versions[1] != version and versions[2] == versions[3] == version
    MODELS.clear()


def test_an_unloadable_rembg_model_makes_items_wait(
    client, api_key, service_settings, tmp_path, monkeypatch
) -> None:
    import shared.background
    from tests.fakes import ThresholdRemover
    from trainer.recipes import get_recipe
    from trainer.training import train

    recipe = replace(get_recipe("pooled"), backbone="tiny", input_size=32)
    model = train(
        make_tree(tmp_path / "d", 4),
        tmp_path / "m",
        recipe,
        settings=service_settings,
        remover=ThresholdRemover(),
    ).path
    settings = service_settings.model_copy(update={"model_path": model})

    def no_session(*_args, **_kwargs):
        raise shared.background.BackgroundRemovalError("cannot load rembg model 'u2netp'")

    monkeypatch.setattr(shared.background, "get_session", no_session)
    MODELS.clear()
    headers = {"X-API-Key": api_key}
    job = client.post(
        "/v1/jobs", data=multipart([("a.jpg", jpeg(1)), ("b.jpg", jpeg(2))]), headers=headers
    ).get_json()
    report = process_batch(
        settings, open_store(settings), job["id"], _item_ids(settings, job["id"])
    )
    MODELS.clear()
    assert report.waiting and report.failed == 0
    body = client.get(f"/v1/jobs/{job['id']}", headers=headers).get_json()
    assert body["counts"]["pending"] == 2 and "cannot load rembg" in body["status_reason"]
