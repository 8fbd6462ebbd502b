"""Named training recipes: the study's, and the one our validation runs chose as default."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from shared.model import HeadConfig


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
DEFAULT_RECIPE = "pooled"


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}") from None
