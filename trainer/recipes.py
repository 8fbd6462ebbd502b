"""Named training recipes: the study's, and the one our validation runs chose as default."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from shared.model import HeadConfig, parse_tap

ACTIVATIONS = ("relu", "sigmoid", "tanh", "elu", "selu")


@dataclass(frozen=True)
class Recipe:
    name: str
    backbone: str = "vgg16"
    input_size: int = 356
    taps: tuple[str, ...] = ("last:flatten",)
    views: tuple[str, ...] = ("image",)
    background_removal: str | None = "u2netp"
    # "dense": a Keras head trained by gradient descent on cached features;
    # "logreg": multinomial logistic regression (scikit-learn), copied into the Keras head.
    head: str = "dense"
    head_config: HeadConfig = field(default_factory=HeadConfig)
    optimizer: str = "rmsprop"
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 50
    class_weight: bool = True
    logreg_c: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
    augment_copies: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["head_config"] = self.head_config.to_dict()
        return data

    def with_overrides(self, **overrides: Any) -> Recipe:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


RECIPES: dict[str, Recipe] = {
    # Teslyuk & Ivasiv (2024): VGG16 at 356 px, Flatten, Dense(384, sigmoid), Dropout(0.5),
    # softmax; RMSprop 1e-3, batch 32, 50 epochs, best epoch by val_loss; rembg first.
    "study": Recipe(name="study"),
    # The study's backbone comparison head: Flatten, Dense(256, relu), Dropout(0.5), Adam 1e-3,
    # 15 epochs.
    "compare": Recipe(
        name="compare", head_config=HeadConfig(((256, "relu"),), 0.5), optimizer="adam", epochs=15
    ),
    # Pooled features of blocks 4 and 5 (global average, signed sqrt, L2 per block) and
    # class-weighted logistic regression: better than the study's head on our validation
    # splits, in seconds instead of minutes (README, "Accuracy").
    "pooled": Recipe(
        name="pooled",
        taps=("mid:avg", "last:avg"),
        head="logreg",
        head_config=HeadConfig((), 0.0, normalize=True),
    ),
    # The same without background removal: on photos already cropped to the garment rembg
    # can cut away part of it (dress-patterns: 82% against 69% on validation).
    "pooled-nobg": Recipe(
        name="pooled-nobg",
        taps=("mid:avg", "last:avg"),
        background_removal=None,
        head="logreg",
        head_config=HeadConfig((), 0.0, normalize=True),
    ),
    # For street photos: the person cut out by rembg, plus the upper half of its box (the
    # upper garment) as a second view.
    "pooled-street": Recipe(
        name="pooled-street",
        taps=("mid:avg", "last:avg"),
        views=("box", "upper"),
        head="logreg",
        head_config=HeadConfig((), 0.0, normalize=True),
    ),
}
# "auto" trains each candidate on the same split and keeps the best by validation balanced
# accuracy: photos cropped to the garment favour the whole image as it is, street photos the
# person cut out and its upper half.
AUTO_CANDIDATES = ("pooled", "pooled-nobg", "pooled-street")
DEFAULT_RECIPE = "auto"


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(
            f"unknown recipe {name!r}; choose one of auto, {', '.join(RECIPES)}"
        ) from None


def recipes_from_options(name: str, **options: Any) -> list[Recipe]:
    """The recipes a name stands for (several for "auto"), each with the overrides."""
    names = AUTO_CANDIDATES if name == "auto" else (name,)
    recipes: list[Recipe] = []
    for candidate in (recipe_from_options(n, **options) for n in names):
        # Overrides can make candidates equal (--no-background-removal): train each once.
        if all(replace(candidate, name="") != replace(r, name="") for r in recipes):
            recipes.append(candidate)
    return recipes


def parse_dense(spec: str) -> tuple[tuple[int, str], ...]:
    """``"512:elu,320:elu"`` -> ((512, "elu"), (320, "elu")); ``""`` or ``"none"`` -> ()."""
    if spec.strip().lower() in {"", "none"}:
        return ()
    layers = []
    for part in spec.split(","):
        units, _, activation = part.strip().partition(":")
        if not units.isdigit() or int(units) < 1:
            raise ValueError(f"bad dense layer {part!r}: expected UNITS:ACTIVATION")
        if activation not in ACTIVATIONS:
            raise ValueError(f"bad activation {activation!r}: choose one of {ACTIVATIONS}")
        layers.append((int(units), activation))
    return tuple(layers)


def recipe_from_options(
    name: str,
    *,
    pooling: str | None = None,
    mid_block: bool | None = None,
    head: str | None = None,
    dense: str | None = None,
    dropout: float | None = None,
    views: str | None = None,
    background_removal: str | bool | None = None,
    class_weight: bool | None = None,
    augment: int | None = None,
    **plain: Any,
) -> Recipe:
    """A named recipe with command-line style overrides; ``None`` leaves a field as it is."""
    recipe = get_recipe(name).with_overrides(
        **plain,
        augment_copies=augment,
        class_weight=class_weight,
        views=tuple(v.strip() for v in views.split(",")) if views else None,
    )
    if background_removal is not None:
        recipe = replace(recipe, background_removal=background_removal or None)
    if pooling is not None or mid_block is not None:
        last = pooling or parse_tap(next(t for t in recipe.taps if t.startswith("last")))[1]
        with_mid = (
            mid_block if mid_block is not None else any(t.startswith("mid") for t in recipe.taps)
        )
        recipe = replace(
            recipe,
            taps=((f"mid:{last if last != 'flatten' else 'avg'}",) if with_mid else ())
            + (f"last:{last}",),
        )
    if head is not None:
        recipe = replace(recipe, head=head)
    config = recipe.head_config
    if dense is not None:
        config = replace(config, dense_layers=parse_dense(dense))
    if dropout is not None:
        config = replace(config, dropout=dropout)
    # Signed sqrt + L2 suits pooled vectors; a flattened map is left as the study had it.
    config = replace(config, normalize=all(not t.endswith("flatten") for t in recipe.taps))
    if recipe.head == "logreg" and config.dense_layers:
        raise ValueError("a logistic-regression head has no dense layers; use --head dense")
    return replace(recipe, head_config=config)
