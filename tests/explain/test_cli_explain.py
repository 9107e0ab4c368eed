"""``edgeops explain`` on the command line: the --json shape, the maps image methods write, the HTML report,
drift, and clear errors for bad usage (exit 2)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from edgeops.cli import cli


def run(*args, cwd=None):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("method", ["permutation", "shap", "surrogate"])
def test_json_shape_for_a_table(feature3, data_files, method):
    x, y = data_files
    r = run("explain", feature3, "--data", x, "--labels", y, "--method", method, "--samples", "20", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)

    assert d["method"] == method
    assert isinstance(d["model_calls"], int) and d["model_calls"] > 0
    imp = d["importances"]
    assert len(imp) == 6 and all({"feature", "mean", "std"} <= set(e) for e in imp)
    assert [e["mean"] for e in imp] == sorted((e["mean"] for e in imp), reverse=True)
    assert imp[0]["feature"] == 3


def test_image_method_writes_its_maps_and_a_report(quadrant, tmp_path):
    model, images = quadrant
    report = tmp_path / "out" / "explain.html"
    r = run("explain", model, "--data", images, "--method", "occlusion", "--patch", "2", "--samples", "6",
            "--report", report, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)

    assert d["maps"] and all(p.endswith(".png") and os.path.isfile(p) for p in d["maps"])
    assert all(open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for p in d["maps"])
    html = report.read_text()
    assert "occlusion" in html and "data:image/png;base64," in html
    assert d["importances"][0]["feature"] in {"0:2,0:2", "0:2,2:4", "2:4,0:2", "2:4,2:4", "1:3,0:2", "0:2,1:3",
                                              "1:3,1:3", "1:3,2:4", "2:4,1:3"}


def test_comparison_json_and_moved_samples(quadrant, tmp_path):
    model, images = quadrant
    r = run("explain", model, model, "--data", images, "--samples", "5", "--maps", tmp_path / "maps", "--json")
    d = json.loads(r.output)

    assert r.exit_code == 0
    assert d["method"] == "occlusion" and d["agreement"] == 1.0
    assert d["model_calls"] == d["reference"]["model_calls"] + d["candidate"]["model_calls"]
    assert len(d["cosine"]["per_sample"]) == 5 and len(d["moved_most"]) == 4
    assert any(p.endswith("occlusion_moved.png") for p in d["maps"])


def test_human_output(feature3, data_files):
    x, y = data_files
    r = run("explain", feature3, "--data", x, "--labels", y)
    assert r.exit_code == 0
    assert "importances" in r.output and "model calls" in r.output


@pytest.mark.parametrize("args, message", [
    (["--method", "occlusion"], "occlusion needs an image input"),
    (["--min-explanation-agreement", "0.5"], "compares two models"),
    (["--baseline", "median"], "--baseline is a number or 'mean'"),
    (["--feature-names", "a,b"], "2 feature names for 6 features"),
])
def test_bad_usage_exits_2_with_a_message(feature3, data_files, args, message):
    x, _ = data_files
    r = run("explain", feature3, "--data", x, *args)
    assert r.exit_code == 2
    assert message in r.output and "Traceback" not in r.output


def test_no_data_is_bad_usage(feature3):
    r = run("explain", feature3)
    assert r.exit_code == 2 and "--data" in r.output


def test_drift_ranks_the_moved_feature_and_finds_it_among_the_important_ones(feature3, data_files, table, tmp_path):
    path, _ = data_files
    x, _ = table
    moved = x.copy()
    moved[:, 3] = np.clip(moved[:, 3] + 0.4, 0, 1.5)
    moved[:, 1] = moved[:, 1] * 1.02
    np.save(tmp_path / "device.npy", moved)
    r = run("explain", feature3, "--drift", tmp_path / "device.npy", "--reference", path, "--json")
    d = json.loads(r.output)

    assert r.exit_code == 0
    assert d["drift"][0]["feature"] == "3" and d["drift"][0]["level"] == "shifted"
    assert d["drift"][0]["mean_shift_std"] > 1
    assert d["moved"] == ["3"]
    assert d["top_features"][0] == 3 and d["important_and_moved"] == [3]
    assert d["model_calls"] > 0


def test_drift_against_a_profile(feature3, data_files, table, tmp_path):
    from edgeops.validate import build_profile, write_profile

    x, _ = table
    write_profile(build_profile(str(feature3), str(data_files[0])), tmp_path / "ref.profile.json")
    np.save(tmp_path / "device.npy", x * 0.5 + 0.5)
    np.save(tmp_path / "same.npy", x)
    shifted = json.loads(run("explain", "--drift", tmp_path / "device.npy", "--reference",
                             tmp_path / "ref.profile.json", "--json").output)
    same = json.loads(run("explain", "--drift", tmp_path / "same.npy", "--reference",
                          tmp_path / "ref.profile.json", "--json").output)

    assert shifted["drift"][0]["level"] == "shifted" and shifted["drift"][0]["psi"] > 0.2
    assert same["drift"][0]["psi"] < 0.01 and same["moved"] == []
