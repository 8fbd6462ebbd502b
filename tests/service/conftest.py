"""Real processes for the service tests: redis-server, Celery workers, an S3 endpoint, and
SQLite or (when SWATCH_TEST_POSTGRES_URL is set) PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.config import Settings
from shared.db.migrate import upgrade
from shared.db.session import session_scope
from swatch.stack import Stack, free_port, redis_binary, start_redis, wait_for_port
from tests.patterns import make_tree

POSTGRES_URL = os.environ.get("SWATCH_TEST_POSTGRES_URL")


@dataclass
class RedisServer:
    folder: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = start_redis(self.folder, self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    redis_binary()  # fails clearly when there is none
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dataclasses import replace

    from trainer.recipes import get_recipe
    from trainer.training import train

    root = tmp_path_factory.mktemp("service-model")
    data = make_tree(root / "data", per_class=8)
    recipe = replace(get_recipe("pooled"), backbone="tiny", input_size=32, background_removal=None)
    settings = Settings(home=root / "home", backbone_weights="none")
    return train(data, root / "model", recipe, settings=settings).path


def _database_url(tmp_path: Path, kind: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'swatch.db'}"
    import psycopg

    name = f"swatch_test_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql" and not POSTGRES_URL:
        pytest.skip("SWATCH_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL)")
    url = _database_url(tmp_path, request.param)
    upgrade(url)
    return url


@pytest.fixture
def service_settings(
    tmp_path: Path, redis_server: RedisServer, tiny_model: Path, database_url: str
) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        redis_url=redis_server.url,
        model_path=tiny_model,
        backbone_weights="none",
        task_batch_size=4,
        sweep_interval_s=1.0,
        stale_running_after_s=4,
        redispatch_after_s=4,
        webhook_allowed_hosts=["127.0.0.1"],
        webhook_secret="test-secret",
    )


@pytest.fixture
def api_key(service_settings: Settings) -> str:
    from api.auth import create_tenant_key

    with session_scope(service_settings.database) as session:
        return create_tenant_key(session, "acme")


@pytest.fixture
def client(service_settings: Settings):
    from api import create_app

    app = create_app(service_settings)
    app.testing = True
    return app.test_client()


class Workers:
    """Celery worker subprocesses sharing the test's settings."""

    def __init__(self, settings: Settings, env: dict[str, str]) -> None:
        self.stack = Stack(settings, api_port=0)
        self.extra_env = env
        settings.home.mkdir(parents=True, exist_ok=True)

    def start(self, name: str = "worker", beat: bool = True) -> subprocess.Popen:
        os.environ.update(self.extra_env)
        return self.stack.start_worker(name, concurrency=1, beat=beat)

    def kill(self, name: str = "worker") -> None:
        process = self.stack.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def log(self, name: str = "worker") -> str:
        return (self.stack.settings.home / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        self.stack.stop()


@pytest.fixture
def workers(service_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workers]:
    env = {
        "SWATCH_MODEL_PATH": str(service_settings.model_path),
        "SWATCH_BACKBONE_WEIGHTS": "none",
        "SWATCH_TASK_BATCH_SIZE": str(service_settings.task_batch_size),
        "SWATCH_SWEEP_INTERVAL_S": "1",
        "SWATCH_STALE_RUNNING_AFTER_S": str(service_settings.stale_running_after_s),
        "SWATCH_REDISPATCH_AFTER_S": str(service_settings.redispatch_after_s),
        "SWATCH_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "SWATCH_WEBHOOK_SECRET": "test-secret",
        "SWATCH_STORAGE_BACKEND": service_settings.storage_backend,
        "SWATCH_S3_ENDPOINT_URL": service_settings.s3_endpoint_url or "",
        "SWATCH_S3_BUCKET": service_settings.s3_bucket,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    for key in list(env):
        if not env[key]:
            env.pop(key)
            monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    group = Workers(service_settings, env)
    yield group
    group.stop()


def wait_until(predicate, timeout_s: float = 60.0, interval_s: float = 0.2, what: str = ""):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or predicate}")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, process=process, timeout_s=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
