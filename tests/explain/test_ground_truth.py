"""Explanations with a known answer: the one feature a model reads ranks first under every method, the one
image quadrant it reads is the only one that lights up, and the same seed gives the same explanation."""

from __future__ import annotations

import numpy as np
import pytest

from edgeops.explain import compare, explain

METHODS = ["permutation", "shap", "surrogate"]


@pytest.mark.parametrize("method", METHODS)
def test_a_model_that_reads_only_feature_3_ranks_it_first(feature3, data_files, method):
    x, y = data_files
    e = explain(feature3, x, labels=y, method=method, samples=30, sample=4, seed=0)
    imp = e.importances()

    assert imp[0]["feature"] == 3
    assert imp[0]["mean"] > 0
    assert all(abs(r["mean"]) < 0.05 * imp[0]["mean"] for r in imp[1:]), imp
    assert e.model_calls >= 1


def test_surrogate_reports_its_fit(feature3, data_files):
    x, _ = data_files
    e = explain(feature3, x, method="surrogate", sample=0)
    assert 0.5 < e.to_dict()["r2"] <= 1.0


def test_feature_names_name_the_features(feature3, data_files):
    x, y = data_files
    names = ("a", "b", "c", "temperature", "e", "f")
    e = explain(feature3, x, labels=y, method="permutation", feature_names=names)
    assert e.importances()[0]["feature"] == "temperature"


def test_occlusion_lights_up_only_the_quadrant_the_model_reads(quadrant):
    model, images = quadrant
    e = explain(model, images, method="occlusion", patch=2, stride=2, samples=10)
    maps = np.abs(e.attribution.maps)

    assert maps.shape == (10, 8, 8)
    assert maps[:, :4, :4].sum() > 0
    assert maps[:, 4:, :].sum() == 0 and maps[:, :, 4:].sum() == 0
    top = e.importances()[:4]
    assert {r["feature"] for r in top} == {"0:2,0:2", "0:2,2:4", "2:4,0:2", "2:4,2:4"}


@pytest.mark.parametrize("method", ["occlusion", "permutation", "surrogate"])
def test_image_methods_rank_the_quadrant_first(quadrant, method):
    model, images = quadrant
    e = explain(model, images, method=method, patch=4, samples=20)
    assert e.importances()[0]["feature"] in ("0:4,0:4",), e.importances()


@pytest.mark.parametrize("method", ["permutation", "occlusion", "shap", "surrogate"])
def test_the_same_seed_gives_the_same_explanation(quadrant, feature3, data_files, method):
    model, data = (quadrant if method == "occlusion" else (feature3, data_files[0]))
    a = explain(model, data, method=method, seed=5, samples=8, max_evals=40)
    b = explain(model, data, method=method, seed=5, samples=8, max_evals=40)
    assert a.importances() == b.importances()


def test_another_seed_shuffles_differently(feature3, data_files):
    x, y = data_files
    a = explain(feature3, x, labels=y, method="permutation", seed=1).importances()
    b = explain(feature3, x, labels=y, method="permutation", seed=2).importances()
    assert a[0]["feature"] == b[0]["feature"] == 3
    assert a[0]["mean"] != b[0]["mean"]


def test_a_model_with_a_batch_fixed_at_one_is_called_once_per_row(make_onnx, data_files):
    from tests.explain.conftest import FEATURES, linear_classifier

    w = np.zeros(FEATURES, np.float32)
    w[3] = 8.0
    fixed = linear_classifier(make_onnx, w, "fixed", [1, FEATURES], bias=-4.0)
    e = explain(fixed, data_files[0], method="permutation", samples=12, repeats=2)

    assert e.rows == 12 * (FEATURES * 2 + 1)
    assert e.model_calls == e.rows
    assert e.importances()[0]["feature"] == 3


def test_comparing_a_model_with_itself_agrees_fully(quadrant):
    model, images = quadrant
    c = compare(model, model, images, method="occlusion", samples=6)
    assert c.agreement == 1.0 and c.rank_correlation == 1.0
    assert np.allclose(c.cosine, 1.0)
