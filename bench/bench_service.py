"""The job service under load, on loopback, with real processes.

    python -m bench.bench_service [--model PATH] [--images 500] [--pollers 50]

Measures: images/s accepted by POST /v1/jobs (one request of N small images, workers
stopped so the API is measured alone); p50/p99 latency of GET /v1/jobs/{id} with P
concurrent pollers (bounded: 20 requests each); end-to-end job images/s with one Celery
worker, against the worker pipeline alone (``process_batch`` in this process, same images,
same batch size) as a ratio. Without --model it trains a tiny model on generated images,
which measures the service's overhead rather than the network's compute.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import requests

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _images(n: int) -> list[tuple[str, bytes]]:
    from tests.patterns import PATTERNS, draw_pattern

    out = []
    for i in range(n):
        buffer = io.BytesIO()
        draw_pattern(PATTERNS[i % 4], i, 96).save(buffer, "JPEG", quality=90)
        out.append((f"{i:04d}.jpg", buffer.getvalue()))
    return out


def _tiny_model(root: Path) -> Path:
    from shared.config import Settings
    from tests.patterns import make_tree
    from trainer.recipes import get_recipe
    from trainer.training import train

    recipe = replace(get_recipe("pooled"), backbone="tiny", input_size=32, background_removal=None)
    return train(
        make_tree(root / "data", 8),
        root / "model",
        recipe,
        settings=Settings(home=root / "home", backbone_weights="none"),
    ).path


def _wait(session: requests.Session, url: str, timeout_s: float = 1800) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = session.get(url, timeout=30).json()
        if body["status"] in {"succeeded", "partially_failed", "failed", "cancelled"}:
            return body
        time.sleep(0.2)
    raise TimeoutError(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    from shared.config import Settings
    from shared.db.migrate import upgrade
    from shared.db.session import session_scope
    from shared.storage import open_store
    from swatch.stack import Stack, free_port, local_key, start_redis

    root = Path(tempfile.mkdtemp(prefix="swatch-bench-"))
    model = args.model or _tiny_model(root / "tiny")
    redis_port, api_port = free_port(), free_port()
    os.environ.update(
        {
            "SWATCH_HOME": str(root / "home"),
            "SWATCH_MODEL_PATH": str(model),
            "SWATCH_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "SWATCH_TASK_BATCH_SIZE": str(args.batch_size),
            "SWATCH_MAX_IMAGES_PER_JOB": str(max(1000, 2 * args.images)),
        }
    )
    os.environ.setdefault("SWATCH_BACKBONE_WEIGHTS", "none")
    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    stack = Stack(settings, api_port)
    stack.processes["redis"] = start_redis(root / "redis", redis_port)
    try:
        upgrade(settings.database)
        key = local_key(settings)
        stack.start_api()
        base = f"http://127.0.0.1:{api_port}"
        http = requests.Session()
        http.headers["X-API-Key"] = key
        images = _images(args.images)

        start = time.perf_counter()
        response = http.post(f"{base}/v1/jobs", files=[("images", f) for f in images], timeout=600)
        accept_s = time.perf_counter() - start
        response.raise_for_status()
        job = response.json()

        latencies: list[float] = []
        lock = threading.Lock()

        def poll() -> None:
            session = requests.Session()
            session.headers["X-API-Key"] = key
            for _ in range(20):
                t0 = time.perf_counter()
                session.get(f"{base}/v1/jobs/{job['id']}", timeout=30).raise_for_status()
                with lock:
                    latencies.append(time.perf_counter() - t0)

        threads = [threading.Thread(target=poll) for _ in range(args.pollers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        latencies.sort()

        http.post(f"{base}/v1/jobs/{job['id']}/cancel", timeout=30).raise_for_status()

        from api.auth import create_tenant_key
        from shared.db.models import Item
        from worker.models import MODELS
        from worker.pipeline import process_batch

        def tenant(name: str) -> requests.Session:
            with session_scope(settings.database) as session:
                session_key = create_tenant_key(session, name)
            s = requests.Session()
            s.headers["X-API-Key"] = session_key
            return s

        # End to end with a warm worker (model loaded): upload, queue, classify, write.
        stack.start_worker(concurrency=1, beat=False)
        warm = tenant("bench-warm")
        first = warm.post(
            f"{base}/v1/jobs", files=[("images", f) for f in images[:4]], timeout=60
        ).json()
        _wait(warm, f"{base}/v1/jobs/{first['id']}")
        e2e = tenant("bench-e2e")  # another tenant: no reuse of job A's content
        start = time.perf_counter()
        job_b = e2e.post(
            f"{base}/v1/jobs", files=[("images", f) for f in images], timeout=600
        ).json()
        final = _wait(e2e, f"{base}/v1/jobs/{job_b['id']}")
        e2e_s = time.perf_counter() - start
        assert final["counts"]["succeeded"] == args.images, final["counts"]
        worker = stack.processes.pop("worker")
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)

        # The worker pipeline alone, in this process, on the same images.
        alone = tenant("bench-pipeline")
        job_c = alone.post(
            f"{base}/v1/jobs", files=[("images", f) for f in images], timeout=600
        ).json()
        with session_scope(settings.database) as session:
            ids = [
                i.id
                for i in session.query(Item).filter_by(job_id=job_c["id"]).order_by(Item.position)
            ]
        store = open_store(settings)
        MODELS.get(settings)  # loaded before timing, as in the warm worker
        start = time.perf_counter()
        for i in range(0, len(ids), args.batch_size):
            process_batch(settings, store, job_c["id"], ids[i : i + args.batch_size])
        pipeline_s = time.perf_counter() - start
    finally:
        stack.stop()

    n = args.images
    print(
        f"model: {model}  images: {n} ({sum(len(d) for _, d in images) / n / 1024:.1f} KiB "
        f"each)  batch: {args.batch_size}  cpus: {os.cpu_count()}"
    )
    print(f"POST /v1/jobs accepted {n} images in {accept_s:.2f}s: {n / accept_s:.1f} images/s")
    print(
        f"GET /v1/jobs/{{id}} with {args.pollers} pollers x 20: "
        f"p50 {1000 * statistics.median(latencies):.1f} ms, "
        f"p99 {1000 * latencies[int(0.99 * (len(latencies) - 1))]:.1f} ms"
    )
    print(
        f"end to end (1 worker): {n / e2e_s:.1f} images/s; pipeline alone: "
        f"{n / pipeline_s:.1f} images/s; ratio {pipeline_s / e2e_s:.2f}"
    )


if __name__ == "__main__":
    main()
