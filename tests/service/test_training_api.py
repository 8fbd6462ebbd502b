"""The trainer service through the API and a real trainer Celery worker."""

from __future__ import annotations

from api.auth import create_tenant_key
from shared.db.session import session_scope
from tests.service.conftest import wait_until
from tests.service.helpers import jpeg, multipart

TINY = {"backbone": "tiny", "input_size": 32, "background_removal": False}


def _wait_run(client, headers: dict, run_id: str, timeout_s: float = 120) -> dict:
    def finished():
        body = client.get(f"/v1/training-runs/{run_id}", headers=headers).get_json()
        return body if body["status"] in {"succeeded", "failed", "cancelled"} else None

    return wait_until(finished, timeout_s, what=f"training run {run_id}")


def _admin_key(settings) -> str:
    with session_scope(settings.database) as session:
        return create_tenant_key(session, "ops", is_admin=True)


def test_training_endpoints_need_an_admin_key(client, api_key) -> None:
    headers = {"X-API-Key": api_key}
    for method, path in (
        ("get", "/v1/training-runs"),
        ("post", "/v1/training-runs"),
        ("get", "/v1/models"),
        ("post", "/v1/models/rollback"),
    ):
        assert getattr(client, method)(path, headers=headers).status_code == 403


def test_bad_training_requests(client, service_settings) -> None:
    headers = {"X-API-Key": _admin_key(service_settings)}
    response = client.post(
        "/v1/training-runs", json={"kind": "dance", "dataset": "x"}, headers=headers
    )
    assert response.status_code == 400 and response.get_json()["errors"]
    response = client.post(
        "/v1/training-runs", json={"kind": "finetune", "dataset": "x"}, headers=headers
    )
    assert response.status_code == 400 and "model" in response.get_json()["detail"]
    assert client.get("/v1/training-runs/nope", headers=headers).status_code == 404
    assert client.post("/v1/models/nope/promote", headers=headers).status_code == 404
    assert client.post("/v1/models/rollback", headers=headers).status_code == 409


def test_a_run_through_the_trainer_worker_then_promote_and_rollback(
    client, service_settings, workers, pattern_tree
) -> None:
    headers = {"X-API-Key": _admin_key(service_settings)}
    workers.stack.start_trainer()
    response = client.post(
        "/v1/training-runs",
        headers=headers,
        json={
            "kind": "train",
            "dataset": str(pattern_tree),
            "recipe": "pooled",
            "options": TINY,
            "promote": True,
        },
    )
    assert response.status_code == 202
    run_id = response.get_json()["id"]
    run = _wait_run(client, headers, run_id)
    assert run["status"] == "succeeded", run["error"]
    assert run["metrics"]["test"]["accuracy"] >= 0 and run["model_version"]
    plot = client.get(run["plots"]["confusion_test.png"], headers=headers)
    assert plot.status_code == 200 and plot.mimetype == "image/png"
    models = client.get("/v1/models", headers=headers).get_json()["models"]
    assert models[0]["version"] == run["model_version"] and models[0]["stage"] == "production"

    second = client.post(
        "/v1/training-runs",
        headers=headers,
        json={
            "kind": "train",
            "dataset": str(pattern_tree),
            "recipe": "pooled",
            "options": {**TINY, "input_size": 40},
        },
    ).get_json()
    done = _wait_run(client, headers, second["id"])
    promoted = client.post(f"/v1/models/{done['model_version']}/promote", headers=headers)
    assert promoted.status_code == 200 and promoted.get_json()["previous"] == run["model_version"]
    back = client.post("/v1/models/rollback", headers=headers).get_json()
    assert back["version"] == run["model_version"]


def test_labels_are_accepted_for_classified_images_only(client, api_key, service_settings) -> None:
    from shared.db.models import Item
    from shared.storage import open_store
    from worker.pipeline import process_batch

    headers = {"X-API-Key": api_key}
    job = client.post("/v1/jobs", data=multipart([("a.jpg", jpeg(1))]), headers=headers).get_json()
    item_id = client.get(f"/v1/jobs/{job['id']}/results", headers=headers).get_json()["items"][0][
        "id"
    ]
    assert (
        client.post(
            f"/v1/items/{item_id}/label", json={"pattern": "floral"}, headers=headers
        ).status_code
        == 409
    )  # not classified yet
    process_batch(service_settings, open_store(service_settings), job["id"], [item_id])
    assert (
        client.post(
            f"/v1/items/{item_id}/label", json={"pattern": "Not OK!"}, headers=headers
        ).status_code
        == 400
    )
    response = client.post(
        f"/v1/items/{item_id}/label", json={"pattern": "floral"}, headers=headers
    )
    assert response.status_code == 200 and response.get_json()["label"] == "floral"
    with session_scope(service_settings.database) as session:
        assert session.get(Item, item_id).labelled_at is not None


def test_every_kind_through_the_trainer_worker(
    client, service_settings, workers, pattern_tree
) -> None:
    headers = {"X-API-Key": _admin_key(service_settings)}
    workers.stack.start_trainer()
    quick = {**TINY, "epochs": 1}
    requests = {
        "train": {"recipe": "study", "options": quick},
        "tune": {"options": quick, "max_trials": 2, "trial_epochs": 1},
        "compare": {
            "options": {"input_size": 32, "epochs": 1, "background_removal": False},
            "backbones": ["tiny", "xception"],
        },
        "pipeline": {
            "options": quick,
            "max_trials": 1,
            "trial_epochs": 1,
            "finetune": {"epochs": 1},
        },
    }
    ids = {}
    for kind, extra in requests.items():
        response = client.post(
            "/v1/training-runs",
            headers=headers,
            json={"kind": kind, "dataset": str(pattern_tree), **extra},
        )
        assert response.status_code == 202, response.get_json()
        ids[kind] = response.get_json()["id"]

    runs = {k: _wait_run(client, headers, r, 240) for k, r in ids.items()}
    assert {k: r["status"] for k, r in runs.items()} == dict.fromkeys(requests, "succeeded"), {
        k: r["error"] for k, r in runs.items()
    }
    assert len(runs["tune"]["trials"]) == 2
    rows = runs["compare"]["metrics"]["comparison"]
    assert [r["status"] for r in rows] == ["trained", "skipped"]
    finetune = client.post(
        "/v1/training-runs",
        headers=headers,
        json={
            "kind": "finetune",
            "dataset": str(pattern_tree),
            "model": runs["train"]["model_version"],
            "finetune": {"epochs": 1},
        },
    ).get_json()
    done = _wait_run(client, headers, finetune["id"])
    assert done["status"] == "succeeded", done["error"]
    all_runs = client.get("/v1/training-runs?limit=100", headers=headers).get_json()["runs"]
    children = [r for r in all_runs if r["parent_id"] == ids["pipeline"]]
    assert sorted(r["kind"] for r in children) == ["finetune", "train", "tune"]
