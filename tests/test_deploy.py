"""Static checks of the container files (no Docker here): they must hold for a user with one."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from shared.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _dockerfile_targets(path: Path) -> set[str]:
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", path.read_text(), re.M | re.I))


def test_every_built_service_names_a_real_dockerfile_and_target() -> None:
    for name, service in COMPOSE["services"].items():
        build = service.get("build")
        if not build:
            continue
        dockerfile = ROOT / build["context"] / build["dockerfile"]
        assert dockerfile.is_file(), name
        assert build["target"] in _dockerfile_targets(dockerfile), name


def test_dockerfile_copies_only_what_exists() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    for line in re.findall(r"^COPY\s+(.+)$", text, re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), source


def test_commands_point_at_real_modules() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text() + yaml.safe_dump(COMPOSE)
    for module in set(re.findall(r"\b((?:api|worker|trainer|shared)\.[a-z_]+)", text)):
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), module
    assert (ROOT / "alembic.ini").is_file()


def test_environment_names_are_settings() -> None:
    fields = {f"SWATCH_{name.upper()}" for name in Settings.model_fields}
    env = COMPOSE["x-swatch-env"]
    assert set(env) <= fields, set(env) - fields


def test_workers_get_a_gpu_and_depend_on_migrations() -> None:
    worker = COMPOSE["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert worker["build"]["args"]["EXTRAS"] == "ml-gpu"
    for name in ("api", "worker"):
        assert (
            COMPOSE["services"][name]["depends_on"]["migrate"]["condition"]
            == "service_completed_successfully"
        )
