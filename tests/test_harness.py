"""The test harness itself (tests/conftest.py): SIGTERM ends a session as Ctrl-C does."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

from tests.helpers import REPO


def test_sigterm_to_a_test_session_tears_its_fixtures_down(tmp_path):
    """A session fixture that started a service (here: writes a file on teardown) is torn
    down when the session gets SIGTERM, as on Ctrl-C; by default SIGTERM killed pytest and
    left the PostgreSQL cluster and mlflow servers the fixtures had started running."""
    (tmp_path / "test_long.py").write_text(textwrap.dedent(f"""
        import time
        from pathlib import Path
        import pytest

        @pytest.fixture(scope="session")
        def service():
            yield
            Path({str(tmp_path / "stopped")!r}).write_text("torn down")

        def test_long(service):
            Path({str(tmp_path / "started")!r}).write_text("")
            time.sleep(60)
    """))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q",
                             "-p", "no:cacheprovider", str(tmp_path / "test_long.py")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=30)[0]
    assert (tmp_path / "stopped").read_text() == "torn down", output
    assert proc.returncode != 0
