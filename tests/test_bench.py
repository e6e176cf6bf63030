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
