"""`faqtune.register`: register a run's model, evaluating it first when it has no test
metrics."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from faqtune import register, train
from tests.helpers import TINY_RUN


def test_register_task_evaluates_a_run_without_test_metrics(make_cfg, store):
    trained = train.run(make_cfg(*TINY_RUN, f"tracking.uri={store}"))
    summary = register.run(make_cfg(*TINY_RUN, f"tracking.uri={store}",
                                    f"run_id={trained['run_id']}"))
    assert summary["version"] == 1 and summary["promoted"]
    assert "test_gain_at_3" in MlflowClient(store).get_run(trained["run_id"]).data.metrics


@pytest.mark.slow
def test_disk_full_while_register_loads_the_model_is_named_as_disk_full(tmp_path):
    """Third probe, C3: the store on a device that fills up before `register`. Loading the
    model fails with ENOSPC; that is a full disk (exit 3), not a wrong model URI (exit 2)."""
    import subprocess
    import sys

    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs "
                            f"{tmp_path}"], capture_output=True)
    if probe.returncode:
        pytest.skip("a private tmpfs (unshare -m, mount) is not permitted here")
    data = " ".join(TINY_RUN)
    script = f"""set -e
mount -t tmpfs -o size=40m tmpfs {tmp_path}
cd {tmp_path}
{sys.executable} -m faqtune.train {data} > train.json 2> /dev/null
run=$({sys.executable} -c "import json; print(json.loads(open('train.json').read().splitlines()[-1])['run_id'])")
dd if=/dev/zero of=fill bs=1M count=100 2> /dev/null || true
set +e
{sys.executable} -m faqtune.register run_id=$run {data} registry.model_name=full
echo "rc=$?"
"""
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          timeout=300)
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.stdout.strip().endswith("rc=3"), proc.stdout + proc.stderr[-2000:]
    assert error and error[-1].startswith("error: No space left on the device holding"), error
    assert "model_uri" not in error[-1]
