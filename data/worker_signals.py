"""DataLoader workers and the stop signals of a cluster.

SLURM, ``timeout`` and terminals deliver SIGTERM, the warning signal and SIGINT to every process of
a job, DataLoader workers included. A worker killed by one would end the run with "DataLoader
worker is killed" before the training process could finish its step and save, so every worker
of a :class:`~data.webdataset.ShardLoader` leaves those signals to the training process (it still
exits when the main process does).
"""

from __future__ import annotations

import os
import signal
from typing import Any


def stop_signals() -> list[signal.Signals]:
    """The signals a cluster sends to say "stop": SIGTERM, SIGINT, the warning signals SIGUSR1/SIGUSR2
    and the one ``CODECLM_REQUEUE_SIGNAL`` names."""
    sigs = {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2}
    name = os.environ.get("CODECLM_REQUEUE_SIGNAL", "").upper()
    if name:
        sigs.add(getattr(signal, name if name.startswith("SIG") else f"SIG{name}", signal.SIGUSR1))
    return sorted(sigs)


def ignore_stop_signals(worker_id: int) -> None:
    """In a DataLoader worker: ignore the stop signals (see the module doc)."""
    for sig in stop_signals():
        signal.signal(sig, signal.SIG_IGN)


class WorkerInit:
    """A ``worker_init_fn``: ignore the stop signals, then run the user's own one, if any."""

    def __init__(self, user: Any = None) -> None:
        self.user = user

    def __call__(self, worker_id: int) -> None:
        ignore_stop_signals(worker_id)
        if self.user is not None:
            self.user(worker_id)
