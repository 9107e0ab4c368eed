"""Fixtures of the task tests: the committed detector and segmenter (``models``) and photos to run them on."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skimage", reason="the task tests draw on scikit-image's sample photos")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="session")
def task_data(tmp_path_factory):
    """Calibration and test photos (.npz keyed ``image``): 32 and 24 scenes, other seeds than training."""
    root = tmp_path_factory.mktemp("task-data")
    from tests.tasks.scenes import scenes

    calib, _, _ = scenes(32, seed=10)
    test, _, _ = scenes(24, seed=11)
    np.savez(root / "calib.npz", image=calib)
    np.savez(root / "test.npz", image=test)
    return {"calib": root / "calib.npz", "test": root / "test.npz"}


@pytest.fixture(scope="session")
def detector():
    from pathlib import Path

    DATA = Path(__file__).resolve().parent / "data"

    return DATA / "detector.onnx"


@pytest.fixture(scope="session")
def segmenter():
    from pathlib import Path

    DATA = Path(__file__).resolve().parent / "data"

    return DATA / "segmenter.onnx"
