"""The one-call GPU check keeps working: it runs on a CPU with the tiny network and
writes its JSON with every section."""

from __future__ import annotations

import importlib.util
import json

import pytest
from helpers import ROOT

from syncdreamer_core.hardware import native_on_cpu


def run_check(tmp_path, dtypes: list[str]) -> tuple[int, dict]:
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "check.json"
    code = module.main(["--device", "cpu", "--size", "tiny", "--sample-steps", "2", "--quality-steps", "3",
                        "--matmul-size", "128", "--batch-view-num", "16", "--dtypes", *dtypes, "--estimate-views", "16", "8",
                        "--out", str(out)])
    return code, json.loads(out.read_text())


def test_the_gpu_check_runs_on_a_cpu_and_writes_every_section(tmp_path):
    code, report = run_check(tmp_path, ["fp32"])
    assert code == 0 and report["errors"] == [], report["errors"]
    assert set(report["matmul_TFLOPs"]) == {"fp32", "fp16", "bf16"} and report["machine"]["device"] == "cpu"
    (network,) = report["network"]
    assert network["finite"] and network["step_TFLOP"] > 0 and network["sample_s"] > 0
    assert network["flop_share_by_dtype"] == {"float32": 1.0}
    # the estimate the pack makes before a run, beside what was measured
    assert 0 < network["estimated_peak_GB"] < network["estimated_need_on_gpu_GB"]
    estimates = report["memory_estimates"]
    assert set(estimates["sampling_peak_GB"]) == {"fp32", "fp16", "bf16"}
    assert estimates["sampling_peak_GB"]["fp16"]["16"] > estimates["sampling_peak_GB"]["fp16"]["8"] > 0
    (vae,) = report["vae"]
    assert vae["nonfinite_values"] == 0 and vae["decode_16_s"] > 0
    assert report["reconstruction"]["fast_faces"] > 1000 and report["reconstruction"]["faces"] > 1000


@pytest.mark.skipif(not native_on_cpu("bf16"), reason="this CPU has no bf16 instructions: bf16 is emulated, a tiny "
                    "step takes over a minute (the fp32 check above runs everywhere)")
def test_the_gpu_check_compares_half_precision_with_fp32(tmp_path):
    code, report = run_check(tmp_path, ["fp32", "bf16"])
    assert code == 0, report["errors"]
    bf16 = next(r for r in report["network"] if r["dtype"] == "bf16")
    assert 0 < bf16["sample_rel_err_vs_fp32"] < 0.5
    assert "rel_err_vs_fp32" in next(r for r in report["vae"] if r["dtype"] == "bf16")
