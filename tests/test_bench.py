"""The benchmark code runs end to end (a smoke test: figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_quick_benchmark_writes_a_report(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "benchmarks.py"), "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (tmp_path / "benchmarks.md").read_text()
    for section in ("Quality at equal budget", "other generator seeds", "One trial",
                    "Sweep efficiency", "Serving", "Scale", "Then push"):
        assert section in report
    assert (tmp_path / "bench_scale.png").exists() and (tmp_path / "bench_sweep.png").exists()


@pytest.mark.slow
def test_quick_quality_protocol_writes_its_section(tmp_path):
    """The quality protocol end to end on tiny data: seeds, a varied setting, the default
    sweep and the sweep-efficiency comparison all reach the report."""
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\nkept text\n")
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "quality.py"), "--quick",
                           "--seeds", "1", "2", "--vary", "monotone=true,false", "--sweep",
                           "--efficiency", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = out.read_text()
    assert "kept text" in report
    assert report.count("<!-- quality:start -->") == 1
    for text in ("Quality on realistic data", "synthetic (tiny)", "| monotone | **true** |",
                 "Sweep efficiency on a realistic set", "| sweep |"):
        assert text in report
