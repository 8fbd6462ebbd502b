from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.config import get_settings
from swatch.cli import cli


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SWATCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SWATCH_BACKBONE_WEIGHTS", "none")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


TINY_ARGS = ["--backbone", "tiny", "--input-size", "32", "--no-background-removal"]


@pytest.fixture
def model(runner: CliRunner, pattern_tree: Path, tmp_path: Path) -> Path:
    out = tmp_path / "model"
    result = runner.invoke(cli, ["train", str(pattern_tree), "--out", str(out), *TINY_ARGS])
    assert result.exit_code == 0, result.output
    assert "model saved to" in result.output and "validation" in result.output
    return out


def test_evaluate_prints_metrics_for_each_split(
    runner: CliRunner, model: Path, pattern_tree: Path
) -> None:
    result = runner.invoke(cli, ["evaluate", str(model), str(pattern_tree), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["all"]["count"] == 40
    assert 0.0 <= metrics["all"]["accuracy"] <= 1.0
    table = runner.invoke(cli, ["evaluate", str(model), str(pattern_tree), "--split", "test"])
    assert table.exit_code == 0 and table.output.splitlines()[1].startswith("test")


def test_classify_reports_bad_files_and_keeps_going(
    runner: CliRunner, model: Path, pattern_tree: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really")
    good = sorted((pattern_tree / "striped").iterdir())[:3]
    args = ["classify", str(model), *map(str, good), str(bad), "--top-k", "2"]
    result = runner.invoke(cli, [*args, "--format", "json"])
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    assert [r["file"] for r in rows] == [*map(str, good), str(bad)]
    assert all("pattern" in r and len(r["top_k"]) == 2 for r in rows[:3])
    assert "error" in rows[3]

    result = runner.invoke(cli, [*args, "--format", "csv"])
    parsed = list(csv.DictReader(io.StringIO(result.stdout)))
    assert parsed[3]["error"] and parsed[0]["pattern"]

    table = runner.invoke(cli, ["classify", str(model), str(pattern_tree / "solid")])
    assert table.exit_code == 0
    assert len(table.stdout.strip().splitlines()) == 10


def test_clear_one_line_errors(runner: CliRunner, pattern_tree: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        cli, ["train", str(pattern_tree), "--out", str(tmp_path / "m"), "--backbone", "alexnet"]
    )
    assert result.exit_code == 2
    assert "unknown backbone 'alexnet'" in result.output
    result = runner.invoke(cli, ["classify", str(tmp_path), str(pattern_tree)])
    assert result.exit_code == 2 and "not a Swatch model" in result.output
    result = runner.invoke(
        cli, ["train", str(pattern_tree), "--out", str(tmp_path / "m"), "--recipe", "magic"]
    )
    assert result.exit_code == 2 and "unknown recipe" in result.output


def test_finetune_command(runner: CliRunner, model: Path, pattern_tree: Path, tmp_path: Path):
    out = tmp_path / "tuned"
    result = runner.invoke(
        cli,
        [
            "finetune",
            str(model),
            str(pattern_tree),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--learning-rate",
            "1e-4",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "best epoch 1" in result.output and (out / "model.keras").is_file()


def test_tune_compare_and_pipeline_commands(
    runner: CliRunner, pattern_tree: Path, tmp_path: Path
) -> None:
    tiny = ["--input-size", "32", "--epochs", "1", "--no-background-removal"]
    result = runner.invoke(
        cli,
        [
            "compare",
            str(pattern_tree),
            "--out-dir",
            str(tmp_path / "c"),
            "--backbones",
            "tiny,resnet50",
            *tiny,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "tiny" in result.output and "resnet50" in result.output and "skipped" in result.output
    result = runner.invoke(
        cli,
        [
            "pipeline",
            str(pattern_tree),
            "--out-dir",
            str(tmp_path / "p"),
            "--max-trials",
            "1",
            "--trial-epochs",
            "1",
            "--finetune-epochs",
            "1",
            "--backbone",
            "tiny",
            *tiny,
        ],
    )
    assert result.exit_code == 0, result.output
    stages = [line.split(" (")[0] for line in result.output.splitlines() if line.startswith("==")]
    assert stages == [
        *(
            f"== {stage}: {tmp_path / 'p' / folder}"
            for stage, folder in (
                ("train", "trained"),
                ("tune", "tuned"),
                ("finetune", "finetuned"),
            )
        ),
        "== top tuner trials",
    ]
    assert "wall time: train" in result.output
