"""Loading a saved pattern model and classifying images in batches."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from shared.artifact import MODEL_FILE, ModelMetadata, read_metadata
from shared.background import BackgroundRemover
from shared.config import Settings, get_settings
from shared.images import decode_image, load_image
from shared.preprocessing import Preprocessing, make_views, resize_view

ImageInput = Image.Image | bytes | str | Path


class Classifier:
    """A loaded model; load once per process and reuse it for every batch."""

    def __init__(
        self,
        model: object,
        metadata: ModelMetadata,
        remover: BackgroundRemover | None,
        settings: Settings,
    ) -> None:
        self.model = model
        self.metadata = metadata
        self.prep = Preprocessing.from_dict(metadata.preprocessing)
        self.remover = remover
        self.settings = settings

    @classmethod
    def load(cls, path: Path | str, settings: Settings | None = None) -> Classifier:
        import keras

        import shared.layers  # noqa: F401  (registers the custom layers)

        settings = settings or get_settings()
        metadata = read_metadata(Path(path))
        model = keras.models.load_model(Path(path) / MODEL_FILE, compile=False)
        prep = Preprocessing.from_dict(metadata.preprocessing)
        remover = (
            BackgroundRemover(prep.background_removal, settings.u2net_home)
            if prep.background_removal
            else None
        )
        return cls(model, metadata, remover, settings)

    @property
    def class_names(self) -> list[str]:
        return self.metadata.class_names

    def _image(self, item: ImageInput) -> Image.Image:
        if isinstance(item, Image.Image):
            return item.convert("RGB") if item.mode != "RGB" else item
        if isinstance(item, bytes):
            return decode_image(item, self.settings.max_image_pixels)
        return load_image(Path(item), self.settings.max_image_pixels)[0]

    def prepare(self, item: ImageInput) -> list[np.ndarray]:
        """One image's input views, uint8; raises ImageError for a bad image."""
        return self.prepare_with_mask(item)[0]

    def prepare_with_mask(self, item: ImageInput) -> tuple[list[np.ndarray], Image.Image | None]:
        """The views and, when the model removes backgrounds, the RGBA cut-out."""
        image = self._image(item)
        cutout = None
        mask = None
        if self.prep.background_removal and self.remover is not None:
            mask = self.remover.mask(image)
            cutout = image.convert("RGBA")
            cutout.putalpha(mask)
        views = make_views(image, self.prep, self.remover, mask=mask)
        return [resize_view(v, self.prep.input_size) for v in views], cutout

    def predict_views(self, views: Sequence[list[np.ndarray]], batch_size: int = 32) -> np.ndarray:
        """Probabilities for already prepared images, [N, classes]."""
        if not views:
            return np.zeros((0, len(self.class_names)), np.float32)
        n_views = len(self.prep.views)
        out = []
        for start in range(0, len(views), batch_size):
            chunk = views[start : start + batch_size]
            inputs = [np.stack([v[i] for v in chunk]).astype(np.float32) for i in range(n_views)]
            # predict_on_batch: model.predict's per-call set-up costs ~0.1 s, which dominates
            # small batches (bench/bench_model.py).
            out.append(self.model.predict_on_batch(inputs if n_views > 1 else inputs[0]))
        return np.concatenate([np.asarray(o, dtype=np.float32) for o in out])

    def predict(self, images: Sequence[ImageInput], batch_size: int = 32) -> np.ndarray:
        """Per-class probabilities for each image, [N, classes]. Bad images raise."""
        out = []
        for start in range(0, len(images), batch_size):
            chunk = [self.prepare(item) for item in images[start : start + batch_size]]
            out.append(self.predict_views(chunk, batch_size))
        if not out:
            return np.zeros((0, len(self.class_names)), np.float32)
        return np.concatenate(out)

    def top_k(self, probs: np.ndarray, k: int = 3) -> list[list[tuple[str, float]]]:
        order = np.argsort(-probs, axis=1)[:, :k]
        return [
            [(self.class_names[j], float(row[j])) for j in idx]
            for row, idx in zip(probs, order, strict=True)
        ]
