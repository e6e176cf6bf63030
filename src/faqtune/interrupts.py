"""SIGTERM (`kill`, `timeout`, CI, Kubernetes) stops faqtune the way Ctrl-C does: as a
KeyboardInterrupt, so runs are marked KILLED, trials are released and a summary is printed."""

from __future__ import annotations

import signal


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
