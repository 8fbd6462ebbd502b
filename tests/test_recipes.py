from __future__ import annotations

import pytest

from trainer.recipes import get_recipe, parse_dense, recipe_from_options


def test_the_study_recipe_is_the_papers() -> None:
    study = get_recipe("study")
    assert (study.backbone, study.input_size, study.taps) == ("vgg16", 356, ("last:flatten",))
    assert study.head_config.dense_layers == ((384, "sigmoid"),)
    assert study.head_config.dropout == 0.5
    assert (study.optimizer, study.learning_rate, study.batch_size, study.epochs) == (
        "rmsprop",
        1e-3,
        32,
        50,
    )
    assert study.background_removal == "u2netp"


def test_options_override_a_named_recipe() -> None:
    recipe = recipe_from_options(
        "study",
        pooling="avg",
        mid_block=True,
        dense="512:elu,320:elu",
        optimizer="sgd",
        background_removal=False,
        views="box,upper",
    )
    assert recipe.taps == ("mid:avg", "last:avg")
    assert recipe.head_config.dense_layers == ((512, "elu"), (320, "elu"))
    assert recipe.head_config.normalize
    assert recipe.optimizer == "sgd" and recipe.background_removal is None
    assert recipe.views == ("box", "upper")
    assert recipe_from_options("pooled", mid_block=False).taps == ("last:avg",)
    assert recipe_from_options("pooled", background_removal="u2net").background_removal == "u2net"


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="bad activation"):
        parse_dense("128:swish")
    with pytest.raises(ValueError, match="bad dense layer"):
        parse_dense("many:relu")
    with pytest.raises(ValueError, match="no dense layers"):
        recipe_from_options("pooled", dense="64:relu")
    assert parse_dense("none") == ()
