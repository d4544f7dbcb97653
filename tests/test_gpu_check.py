"""The one-call GPU check keeps working: it runs on a CPU with the tiny network and
writes its JSON with every section."""

from __future__ import annotations

import importlib.util
import json

from helpers import ROOT


def test_the_gpu_check_runs_on_a_cpu_and_writes_every_section(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "check.json"
    code = module.main(["--device", "cpu", "--size", "tiny", "--sample-steps", "2", "--quality-steps", "3",
                        "--matmul-size", "128", "--batch-view-num", "16", "--dtypes", "fp32", "bf16",
                        "--out", str(out)])
    report = json.loads(out.read_text())
    assert code == 0 and report["errors"] == [], report["errors"]
    assert set(report["matmul_TFLOPs"]) == {"fp32", "fp16", "bf16"}
    network = {r["dtype"]: r for r in report["network"]}
    assert set(network) == {"fp32", "bf16"} and all(r["finite"] and r["step_TFLOP"] > 0 for r in network.values())
    assert 0 < network["bf16"]["sample_rel_err_vs_fp32"] < 0.5
    vae = {r["dtype"]: r for r in report["vae"]}
    assert vae["fp32"]["nonfinite_values"] == 0 and "rel_err_vs_fp32" in vae["bf16"]
    assert report["reconstruction"]["fast_faces"] > 1000 and report["reconstruction"]["faces"] > 1000
