"""`python -m faqtune.prepare`: the summary line, and clean failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import TINY_DATA, last_json, run_task


@pytest.mark.slow
def test_prepare_cli_prints_summary_and_fails_cleanly(tmp_path):
    ok = run_task("prepare", *TINY_DATA, f"paths.cache={tmp_path}/c", cwd=tmp_path)
    summary = last_json(ok.stdout)
    assert summary["faqs"] > 0 and summary["train"] > 0 and len(summary["hash"]) == 64
    assert Path(summary["path"]).joinpath("manifest.json").exists()
    bad = run_task("prepare", "data=reference_tsv", f"data.path={tmp_path}/nowhere",
                   f"paths.cache={tmp_path}/c", cwd=tmp_path, check=False)
    assert bad.returncode != 0
    assert "orig-q.tsv.gz was not found" in bad.stderr
    assert "Traceback" not in bad.stderr + bad.stdout
    invalid = run_task("prepare", "data.min_dupes=1", f"paths.cache={tmp_path}/c",
                       cwd=tmp_path, check=False)
    assert invalid.returncode != 0 and "data.min_dupes=1" in invalid.stderr
    assert "Traceback" not in invalid.stderr
