"""``swatch``: train, evaluate and classify from the command line.

Heavy imports (TensorFlow) happen inside the commands, so ``swatch --help`` is instant.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

import click

from shared.images import is_image_name


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _progress(desc: str, total: int):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="img" if "epoch" not in desc else "epoch",
        leave=False,
        file=sys.stderr,
        disable=None,
    )


def _report(result, detail: str) -> None:
    """Where a trained model went, its metrics per split and the time of each stage."""
    from trainer.evaluation import metrics_table

    click.echo(f"model saved to {result.path}  ({detail})")
    click.echo(metrics_table(result.metrics))
    click.echo("stage times: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))


def _fail(message: str) -> None:
    click.echo(f"swatch: error: {message}", err=True)
    sys.exit(2)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def cli(verbose: bool) -> None:
    """Swatch: recognise the pattern of clothing in photos."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _quiet_tensorflow()


@cli.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model folder.")
@click.option(
    "--recipe",
    default=None,
    help="auto (default: pooled, pooled-nobg and pooled-street, the best on validation), "
    "study, compare, pooled, pooled-nobg, pooled-street.",
)
@click.option("--backbone", default=None, help="vgg16, vgg19, inception_v3, xception, resnet50.")
@click.option("--input-size", type=int, default=None, help="Square input side in pixels.")
@click.option(
    "--pooling",
    type=click.Choice(["flatten", "avg", "max"]),
    default=None,
    help="How the last block's maps become a vector.",
)
@click.option(
    "--mid-block/--no-mid-block",
    default=None,
    help="Add the previous block's pooled output (VGG16: block 4).",
)
@click.option("--head", type=click.Choice(["dense", "logreg"]), default=None)
@click.option(
    "--dense",
    default=None,
    metavar="UNITS:ACT,...",
    help="Dense layers of a dense head, e.g. 384:sigmoid or 512:elu,320:elu.",
)
@click.option("--dropout", type=float, default=None)
@click.option("--optimizer", type=click.Choice(["rmsprop", "adam", "sgd"]), default=None)
@click.option("--learning-rate", type=float, default=None)
@click.option("--epochs", type=int, default=None, help="Epochs for a dense head.")
@click.option("--batch-size", type=int, default=None)
@click.option(
    "--augment",
    type=int,
    default=None,
    metavar="COPIES",
    help="Augmented copies of each training image (cached like the originals).",
)
@click.option("--views", default=None, help="Comma-separated views: image, box, upper.")
@click.option("--background-model", default=None, help="rembg model (u2netp, u2net, ...).")
@click.option("--no-background-removal", is_flag=True, help="Classify the photo as it is.")
@click.option("--no-class-weight", is_flag=True, help="Do not weight classes by rarity.")
@click.option(
    "--finetune-epochs",
    type=int,
    default=None,
    help="Then fine-tune the last backbone block (VGG16: block 5) this many epochs at most; "
    "kept only if the validation loss drops. Default 10 for the auto recipe, 0 (none) for a "
    "named one; about 90 s an epoch for 1,800 images on 2 CPU cores.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def train(
    data_dir: Path,
    out: Path,
    recipe: str | None,
    seed: int,
    as_json: bool,
    no_background_removal: bool,
    no_class_weight: bool,
    finetune_epochs: int | None,
    **options: object,
) -> None:
    """Train a pattern model on DATA_DIR (one folder per class, or train/validation/test)."""
    from trainer.recipes import DEFAULT_RECIPE, recipes_from_options

    try:
        candidates = recipes_from_options(
            recipe or DEFAULT_RECIPE,
            background_removal=False if no_background_removal else options.pop("background_model"),
            class_weight=False if no_class_weight else None,
            **options,
        )
        from trainer.training import train_best

        result = train_best(data_dir, out, candidates, seed=seed, progress=_progress)
        if finetune_epochs is None:
            finetune_epochs = 10 if (recipe or DEFAULT_RECIPE) == "auto" else 0
        if finetune_epochs:
            from trainer.finetune import FinetuneConfig, finetune_if_better

            result = finetune_if_better(
                result, data_dir, FinetuneConfig(epochs=finetune_epochs), progress=_progress
            )
    except (ValueError, RuntimeError, OSError) as exc:
        _fail(str(exc))
        return
    if as_json:
        click.echo(
            json.dumps(
                {"model": str(result.path), "metrics": result.metrics, "timings_s": result.timings},
                indent=2,
            )
        )
        return
    skipped = len(result.dataset.skipped)
    _report(
        result,
        f"recipe {result.metadata.recipe['name']}, "
        f"{len(result.dataset.class_names)} classes, {skipped} files skipped",
    )


@cli.command()
@click.argument("model_path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model folder.")
@click.option("--epochs", type=int, default=50, show_default=True)
@click.option("--learning-rate", type=float, default=1e-5, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--patience", type=int, default=5, show_default=True, help="Early stopping.")
@click.option(
    "--augment",
    type=int,
    default=0,
    metavar="COPIES",
    help="Augmented copies of each training image (cached).",
)
def finetune(
    model_path: Path,
    data_dir: Path,
    out: Path,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    patience: int,
    augment: int,
) -> None:
    """Fine-tune a trained model's last backbone block (VGG16: block 5) with its head."""
    from trainer.finetune import FinetuneConfig
    from trainer.finetune import finetune as run_finetune

    config = FinetuneConfig(epochs, learning_rate, batch_size, patience, augment)
    try:
        result = run_finetune(model_path, data_dir, out, config, progress=_progress)
    except (ValueError, RuntimeError, OSError) as exc:
        _fail(str(exc))
        return
    _report(result, f"best epoch {result.metadata.recipe['finetune']['best_epoch']}")


@cli.command()
@click.argument("model_path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--split",
    type=click.Choice(["all", "train", "validation", "test"]),
    default="all",
    show_default=True,
    help="Which split to judge (same seed and fractions as training).",
)
@click.option("--seed", type=int, default=None, help="Split seed (default: the model's).")
@click.option("--json", "as_json", is_flag=True)
def evaluate(model_path: Path, data_dir: Path, split: str, seed: int | None, as_json: bool) -> None:
    """Judge a saved model on DATA_DIR: loss, accuracy, precision, recall, F1, confusion."""
    from trainer.evaluate import evaluate_model
    from trainer.evaluation import metrics_table

    try:
        metrics = evaluate_model(model_path, data_dir, split=split, seed=seed, progress=_progress)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
        return
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
    else:
        click.echo(metrics_table(metrics))


@cli.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model folder.")
@click.option("--recipe", default="study", show_default=True, help="Features to tune on.")
@click.option("--max-trials", type=int, default=10, show_default=True)
@click.option("--trial-epochs", type=int, default=15, show_default=True)
@click.option(
    "--directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Tuner state (default OUT.tuner); the same folder resumes a search.",
)
@click.option("--seed", type=int, default=0, show_default=True)
def tune(
    data_dir: Path,
    out: Path,
    recipe: str,
    max_trials: int,
    trial_epochs: int,
    directory: Path | None,
    seed: int,
) -> None:
    """Keras-Tuner Bayesian search over the study's head space, then train the best."""
    from trainer.evaluation import metrics_table
    from trainer.recipes import get_recipe
    from trainer.tuning import tune as run_tune

    try:
        result = run_tune(
            data_dir,
            out,
            get_recipe(recipe),
            directory=directory or out.with_name(out.name + ".tuner"),
            max_trials=max_trials,
            trial_epochs=trial_epochs,
            seed=seed,
            progress=_progress,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        _fail(str(exc))
        return
    _echo_trials(result.trials)
    click.echo(f"model saved to {result.result.path}")
    click.echo(metrics_table(result.result.metrics))


def _echo_trials(trials: list[dict], top: int = 3) -> None:
    """The best trials, like the study's Table 2."""
    click.echo(f"{'trial':<8}{'layers':<24}{'optimizer':<10}{'val_loss':>9}")
    for trial in trials[:top]:
        layers = ", ".join(f"{u} {a}" for u, a in trial["dense_layers"])
        loss = f"{trial['val_loss']:.4f}" if trial["val_loss"] is not None else "nan"
        click.echo(f"{trial['trial']:<8}{layers:<24}{trial['optimizer']:<10}{loss:>9}")


@cli.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out-dir", required=True, type=click.Path(path_type=Path))
@click.option(
    "--backbones", default="vgg16,vgg19,inception_v3,xception,resnet50", show_default=True
)
@click.option("--input-size", type=int, default=None)
@click.option("--epochs", type=int, default=None)
@click.option("--no-background-removal", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def compare(
    data_dir: Path,
    out_dir: Path,
    backbones: str,
    input_size: int | None,
    epochs: int | None,
    no_background_removal: bool,
    as_json: bool,
) -> None:
    """The study's backbone comparison (Flatten, Dense 256 relu, Adam, 15 epochs)."""
    from trainer.compare import compare as run_compare
    from trainer.compare import comparison_table
    from trainer.recipes import get_recipe

    base = get_recipe("compare").with_overrides(input_size=input_size, epochs=epochs)
    if no_background_removal:
        base = replace(base, background_removal=None)
    try:
        rows = run_compare(
            data_dir, out_dir, backbones=tuple(backbones.split(",")), base=base, progress=_progress
        )
    except (ValueError, RuntimeError, OSError) as exc:
        _fail(str(exc))
        return
    click.echo(json.dumps(rows, indent=2) if as_json else comparison_table(rows))


@cli.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out-dir", required=True, type=click.Path(path_type=Path))
@click.option("--max-trials", type=int, default=10, show_default=True)
@click.option("--trial-epochs", type=int, default=15, show_default=True)
@click.option("--finetune-epochs", type=int, default=50, show_default=True)
@click.option("--backbone", default=None, help="vgg16 (the study's), vgg19 or tiny.")
@click.option("--input-size", type=int, default=None)
@click.option("--epochs", type=int, default=None, help="Epochs of the first training.")
@click.option("--no-background-removal", is_flag=True)
@click.option("--seed", type=int, default=0, show_default=True)
def pipeline(
    data_dir: Path,
    out_dir: Path,
    max_trials: int,
    trial_epochs: int,
    finetune_epochs: int,
    backbone: str | None,
    input_size: int | None,
    epochs: int | None,
    no_background_removal: bool,
    seed: int,
) -> None:
    """Train (the study's recipe), tune, then fine-tune; prints the study's tables."""
    from trainer.evaluation import metrics_table
    from trainer.finetune import FinetuneConfig
    from trainer.pipeline import run_pipeline

    def stage(name: str, result, seconds: float) -> None:
        click.echo(f"== {name}: {result.path} ({seconds:.0f} s)")
        click.echo(metrics_table(result.metrics))

    from trainer.recipes import get_recipe

    base = get_recipe("study").with_overrides(
        backbone=backbone, input_size=input_size, epochs=epochs
    )
    if no_background_removal:
        base = replace(base, background_removal=None)
    try:
        result = run_pipeline(
            data_dir,
            out_dir,
            base=base,
            max_trials=max_trials,
            trial_epochs=trial_epochs,
            finetune_config=FinetuneConfig(epochs=finetune_epochs),
            seed=seed,
            progress=_progress,
            on_stage=stage,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        _fail(str(exc))
        return
    click.echo("== top tuner trials")
    _echo_trials(result.trials)
    click.echo("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items()))


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_image_name(p)))
        else:
            files.append(path)
    return files


@cli.command()
@click.argument("model_path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option("--top-k", type=int, default=1, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
def classify(
    model_path: Path, paths: tuple[Path, ...], fmt: str, top_k: int, batch_size: int
) -> None:
    """Classify image files or folders; a bad file gets an error line, the rest go on."""
    from shared.artifact import ArtifactError
    from shared.background import BackgroundRemovalError
    from shared.classifier import Classifier
    from shared.images import ImageError

    try:
        classifier = Classifier.load(model_path)
    except (ArtifactError, OSError, ValueError) as exc:
        _fail(str(exc))
        return
    files = _expand(paths)
    results: list[dict] = []
    bar = _progress("classify", len(files))
    for start in range(0, len(files), batch_size):
        prepared, names = [], []
        for path in files[start : start + batch_size]:
            try:
                prepared.append(classifier.prepare(path))
                names.append(path)
            except ImageError as exc:
                results.append({"file": str(path), "error": str(exc)})
            except BackgroundRemovalError as exc:  # the model's rembg cannot load: stop
                bar.close()
                _fail(str(exc))
        if prepared:
            probs = classifier.predict_views(prepared, batch_size)
            for path, row, top in zip(
                names, probs, classifier.top_k(probs, max(1, top_k)), strict=True
            ):
                results.append(
                    {
                        "file": str(path),
                        "pattern": top[0][0],
                        "confidence": round(top[0][1], 4),
                        "top_k": [{"pattern": c, "probability": round(p, 4)} for c, p in top],
                        "probabilities": {
                            c: round(float(p), 4)
                            for c, p in zip(classifier.class_names, row, strict=True)
                        },
                    }
                )
        bar.update(len(files[start : start + batch_size]))
    bar.close()
    order = {str(p): i for i, p in enumerate(files)}
    results.sort(key=lambda r: order.get(r["file"], 0))
    _print_results(results, fmt, top_k)
    if any("error" in r for r in results):
        sys.exit(1)


def _print_results(results: list[dict], fmt: str, top_k: int) -> None:
    if fmt == "json":
        click.echo(json.dumps(results, indent=2))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(["file", "pattern", "confidence", "top_k", "error"])
        for r in results:
            top = ";".join(f"{t['pattern']}:{t['probability']}" for t in r.get("top_k", []))
            writer.writerow(
                [r["file"], r.get("pattern", ""), r.get("confidence", ""), top, r.get("error", "")]
            )
    else:
        width = max([len(r["file"]) for r in results] + [4])
        for r in results:
            if "error" in r:
                click.echo(f"{r['file']:<{width}}  ERROR {r['error']}")
            else:
                extra = ", ".join(
                    f"{t['pattern']} {t['probability']:.1%}" for t in r["top_k"][1:top_k]
                )
                click.echo(
                    f"{r['file']:<{width}}  {r['pattern']:<10} {r['confidence']:6.1%}"
                    + (f"  ({extra})" if extra else "")
                )


def _client_options(func):
    func = click.option(
        "--url",
        envvar="SWATCH_API_URL",
        default="http://127.0.0.1:8000",
        show_default=True,
        help="The API's address.",
    )(func)
    return click.option(
        "--api-key",
        envvar="SWATCH_API_KEY",
        default=None,
        help="API key (default: the local stack's, from SWATCH_HOME).",
    )(func)


def _make_client(url: str, api_key: str | None):
    from swatch.client import SwatchClient

    if api_key is None:
        from shared.config import get_settings

        path = get_settings().home / "local-api-key"
        if not path.is_file():
            _fail("no API key: pass --api-key or set SWATCH_API_KEY")
        api_key = path.read_text().strip()
    return SwatchClient(url, api_key)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--wait", is_flag=True, help="Wait for the job, with a progress bar.")
@click.option("--idempotency-key", default=None, help="Retry-safe: the same key, the same job.")
@click.option("--callback-url", default=None, help="POSTed to when the job finishes.")
@_client_options
def submit(
    paths: tuple[Path, ...],
    wait: bool,
    idempotency_key: str | None,
    callback_url: str | None,
    url: str,
    api_key: str | None,
) -> None:
    """Send images (files, folders, zip or tar archives) as one job; prints the job id."""
    from swatch.client import ApiError

    client = _make_client(url, api_key)
    files = [p for p in _expand(paths)] + [
        p for p in paths if p.is_file() and p.suffix.lower() in {".zip", ".tar", ".gz", ".tgz"}
    ]
    files = list(dict.fromkeys(files))
    if not files:
        _fail("no image files found")
    try:
        job = client.submit(files, idempotency_key, callback_url)
    except (ApiError, OSError) as exc:
        _fail(f"submission refused: {exc}")
        return
    click.echo(job["id"])
    if not wait:
        return
    from tqdm import tqdm

    bar = tqdm(total=job["item_count"], desc="classifying", unit="img", file=sys.stderr)

    def show(state: dict) -> None:
        done = sum(state["counts"][k] for k in ("succeeded", "failed", "cancelled"))
        bar.update(done - bar.n)
        bar.set_postfix_str(state["status_reason"] or state["status"])

    try:
        final = client.wait(job["id"], on_progress=show)
    except (ApiError, OSError) as exc:
        _fail(str(exc))
        return
    bar.close()
    counts = final["counts"]
    click.echo(
        f"{final['status']}: {counts['succeeded']} classified, {counts['failed']} failed", err=True
    )
    if final["status"] in {"failed", "partially_failed"}:
        sys.exit(1)


@cli.command()
@click.argument("job_id")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json", "jsonl"]), default="csv", show_default=True
)
@_client_options
def results(job_id: str, fmt: str, url: str, api_key: str | None) -> None:
    """Print a job's results."""
    from swatch.client import ApiError

    try:
        click.echo(_make_client(url, api_key).results_text(job_id, fmt), nl=False)
    except (ApiError, OSError) as exc:
        _fail(str(exc))


@cli.command()
@click.option("--port", type=int, default=8000, show_default=True)
@click.option(
    "--workers",
    type=int,
    default=1,
    show_default=True,
    help="Celery worker processes (each loads the model once).",
)
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    default=None,
    help="Where data lives (default: SWATCH_HOME, else ./.swatch).",
)
def up(port: int, workers: int, home: Path | None) -> None:
    """Run the whole stack on this machine: Redis, workers, API. Ctrl-C stops it."""
    import signal as _signal
    import time

    from shared.config import Settings
    from shared.db.migrate import upgrade
    from swatch.stack import Stack, bootstrap, free_port, local_key, start_redis

    home = (home or Path(os.environ.get("SWATCH_HOME", ".swatch"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["SWATCH_HOME"] = str(home)
    redis_port = free_port()
    os.environ.setdefault("SWATCH_REDIS_URL", f"redis://127.0.0.1:{redis_port}/0")
    settings = Settings()
    stack = Stack(settings, port)
    try:
        stack.processes["redis"] = start_redis(home / "redis", redis_port)
        upgrade(settings.database)
        key = local_key(settings)
        stack.start_worker(concurrency=workers)
        stack.start_trainer()
        stack.start_api()
        bootstrap_run = bootstrap(settings)
    except Exception as exc:
        stack.stop()
        _fail(f"could not start the stack: {exc}")
        return
    from shared.storage import open_store
    from worker.models import NoModel, choose_model

    try:
        model = f"model {choose_model(settings, open_store(settings)).version}"
    except NoModel as exc:
        model = f"no model yet ({exc}); jobs wait until there is one"
    if bootstrap_run:
        model = (
            f"no model yet: training one on {settings.bootstrap_dataset} "
            f"(run {bootstrap_run}, GET /v1/training-runs/{bootstrap_run}; "
            f"log {home}/trainer.log); jobs wait and then run"
        )
    click.echo(f"Swatch is running at http://127.0.0.1:{port}  (docs: /docs)")
    click.echo(f"API key: {key}")
    click.echo(f"{model}")
    click.echo(f"data in {home}; logs in {home}/*.log. Ctrl-C stops.")
    stopping = []
    _signal.signal(_signal.SIGTERM, lambda *_: stopping.append(1))
    try:
        while not stopping:
            for name, process in stack.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}")
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        click.echo(f"swatch: {exc}; stopping", err=True)
    finally:
        stack.stop()


def main() -> None:
    cli(prog_name="swatch")
