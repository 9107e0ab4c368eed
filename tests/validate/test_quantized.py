"""Quantized candidates pass sensible gates; a broken one fails them, and the diagnosis finds the layer."""

from __future__ import annotations

from edgeops.validate import Gates, validate

SENSIBLE = Gates(max_accuracy_drop=1.0, min_agreement=0.97, min_cosine=0.99)


def test_static_int8_cnn_passes_sensible_gates(cnn_paths, cnn_int8):
    report = validate(cnn_paths["model"], cnn_int8, cnn_paths["data"], labels=cnn_paths["labels"], gates=SENSIBLE,
                      latency=False)
    assert report.passed, report.failures
    acc, m = report.accuracy, report.outputs["probabilities"]
    assert acc["drop_points"] <= 1.0
    lo, hi = acc["ci95"]
    assert lo <= acc["drop_points"] <= hi
    assert m["top1_agreement"] >= 0.97 and m["cosine"] >= 0.99
    assert 0 < m["mean_abs_error"] <= m["max_abs_error"] < 1
    assert report.divergence is None  # nothing failed, nothing to diagnose


def test_dynamic_int8_mlp_passes_sensible_gates(examples, mlp_dynamic):
    report = validate(examples / "digits_mlp.onnx", mlp_dynamic, examples / "digits_mlp_test.npz",
                      labels=examples / "digits_test_labels.npy", gates=SENSIBLE, latency=False)
    assert report.passed, report.failures
    assert report.outputs["probabilities"]["top1_agreement"] >= 0.97


def test_broken_candidate_fails_every_parity_gate(cnn_paths, cnn_broken):
    report = validate(cnn_paths["model"], cnn_broken, cnn_paths["data"], labels=cnn_paths["labels"], gates=SENSIBLE,
                      latency=False)
    assert not report.passed
    lines = report.failures
    assert len(lines) == 3
    assert lines[0].startswith("accuracy drop ") and "points > 1 allowed (95% CI " in lines[0]
    assert lines[1].startswith("top-1 agreement ") and "< 0.97 required" in lines[1]
    assert lines[2].startswith("cosine similarity ") and "< 0.99 required" in lines[2]
    lo, hi = report.accuracy["ci95"]
    assert 1.0 < lo <= report.accuracy["drop_points"] <= hi  # the drop is real, not noise


def test_divergence_names_the_broken_layer(cnn_paths, cnn_broken):
    report = validate(cnn_paths["model"], cnn_broken, cnn_paths["data"], gates=Gates(min_cosine=0.99), latency=False)
    assert report.diagnosis["method"] == "by-name"  # a float candidate: tensors matched by name
    assert len(report.diagnosis["samples"]) == 16
    top = [e["tensor"] for e in report.divergence[:3]]
    assert "conv2" in top
    conv2 = next(e for e in report.divergence if e["tensor"] == "conv2")
    assert conv2["op_type"] == "Conv" and conv2["sqnr_db"] < 10
    assert all(e["tensor"] not in ("conv1", "relu1", "pool1") for e in report.divergence[:4])  # upstream is intact
    sqnr = [e["sqnr_db"] for e in report.divergence]
    assert sqnr == sorted(sqnr)
    assert report.diagnosis["hint"].startswith("exclude these nodes: --exclude-nodes conv2")


def test_a_qdq_candidate_is_diagnosed_with_onnxruntimes_qdq_helpers(cnn_paths, cnn_int8):
    report = validate(cnn_paths["model"], cnn_int8, cnn_paths["data"], gates=Gates(min_cosine=0.99999),
                      latency=False)
    assert not report.passed
    assert report.diagnosis["method"] == "qdq"
    by_tensor = {e["tensor"]: e for e in report.divergence}
    assert {"relu1", "pool1", "relu2", "logits", "probabilities"} <= set(by_tensor)
    assert all(e["match"] == "qdq" and "qdq_sqnr_db" in e for e in by_tensor.values())
    assert by_tensor["relu1"]["op_type"] == "Relu" and by_tensor["logits"]["op_type"] == "Gemm"
    assert by_tensor["image"]["op_type"] == "input"  # the input's own quantization counts too


def test_qdq_tensors_renamed_are_still_paired_through_the_graph(cnn_paths, cnn_int8, tmp_path):
    """``edgeops convert`` shortens the quantizer's names (relu1_DequantizeLinear_Output -> relu1/dq),
    which the helpers' suffix matching misses; the Q -> DQ pairs are then found from the graph."""
    import onnx

    model = onnx.load(str(cnn_int8))
    for node in model.graph.node:
        for seq in (node.input, node.output):
            seq[:] = [n.replace("_DequantizeLinear_Output", "/dq").replace("_QuantizeLinear_Output", "/q")
                      for n in seq]
    renamed = tmp_path / "renamed_int8.onnx"
    onnx.save(model, str(renamed))
    report = validate(cnn_paths["model"], renamed, cnn_paths["data"], gates=Gates(min_cosine=0.99999), latency=False)
    by_tensor = {e["tensor"]: e for e in report.divergence}
    assert by_tensor["relu1"]["match"] == "dequantized" and by_tensor["relu2"]["match"] == "dequantized"
    assert by_tensor["relu1"]["sqnr_db"] > 20  # the dequantized value (after the folded ReLU), not the raw Conv


def test_no_diagnosis_when_turned_off(cnn_paths, cnn_broken):
    report = validate(cnn_paths["model"], cnn_broken, cnn_paths["data"], gates=Gates(min_cosine=0.99),
                      latency=False, diagnose=False)
    assert not report.passed and report.divergence is None and report.diagnosis is None
