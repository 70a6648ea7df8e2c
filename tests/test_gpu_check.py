"""`make gpu-check --dry-run`: the GPU check's plan runs end to end on CPU with a tiny model (no CUDA here), writes
its marked BENCHMARKS.md section (replacing, not duplicating, on a second run) and its JSON."""
from __future__ import annotations

import json

import gpu_check


def test_gpu_check_dry_run_writes_its_section(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nhand-written notes\n")
    result = gpu_check.main(["--dry-run", "--out", str(out)])
    assert set(result["steps"]["runs"]) == {"all", "top_k", "top_k cached"}
    assert result["steps"]["cache_equal"]
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nhand-written notes") and "Dry run only" in text
    assert text.count(gpu_check.MARK_START) == 1 and "| top_k cached |" in text and "| head" in text
    gpu_check.write_section(out, gpu_check.MARK_START + "\nnew\n" + gpu_check.MARK_END + "\n")
    assert out.read_text().count(gpu_check.MARK_START) == 1 and "Dry run only" not in out.read_text()
    saved = json.loads((tmp_path / "benchmarks" / "gpu_check.json").read_text())
    assert saved["dry_run"] and saved["device"] == "CPU (dry run)"
