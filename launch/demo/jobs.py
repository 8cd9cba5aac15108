"""One generation at a time: a worker thread and a bounded queue of waiting jobs.

``JobQueue.submit(kind, fn)`` queues ``fn(job)`` and returns the :class:`Job` at once, or raises
:class:`QueueFull` when ``max_waiting`` jobs already wait. The worker runs jobs in order; ``fn``
reports its progress through ``job.report(stage, fraction)`` and returns the job's result (any
object). An exception inside ``fn`` ends only that job: its message is kept for the page, and the
worker goes on with the next one. Finished jobs are kept (the newest ``keep`` of them) so that
their audio and pictures can be fetched.

A job that makes audio as it goes pushes it with ``job.push_audio(pcm)`` (16-bit little-endian
PCM); ``job.audio_chunks()`` yields every chunk pushed, from the first, waiting for more until the
job has ended: the page plays the audio while it is generated.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger("codeclm.demo")

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "error"


class QueueFull(RuntimeError):
    """The queue holds as many waiting jobs as it may."""


@dataclass
class Job:
    id: str
    kind: str
    fn: Callable[["Job"], Any]
    seq: int
    state: str = QUEUED
    stage: str = "queued"
    fraction: float = 0.0
    error: str | None = None
    result: Any = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    audio_rate: int | None = None  # the sample rate of the PCM pushed so far
    _audio: list = field(default_factory=list)
    _audio_ended: bool = False
    _audio_cond: threading.Condition = field(default_factory=threading.Condition)

    def push_audio(self, pcm: bytes, sample_rate: int) -> None:
        """One chunk of 16-bit little-endian PCM, as it is made."""
        with self._audio_cond:
            self.audio_rate = sample_rate
            if pcm:
                self._audio.append(pcm)
            self._audio_cond.notify_all()

    def end_audio(self) -> None:
        with self._audio_cond:
            self._audio_ended = True
            self._audio_cond.notify_all()

    def audio_chunks(self, timeout: float = 600.0):
        """Every pushed chunk in order, waiting for the next until the job ends (or ``timeout``
        seconds pass without one)."""
        sent = 0
        while True:
            with self._audio_cond:
                while sent == len(self._audio) and not self._audio_ended:
                    if not self._audio_cond.wait(timeout):
                        return  # nothing new for `timeout` seconds
                chunks, ended = self._audio[sent:], self._audio_ended
            yield from chunks
            sent += len(chunks)
            if ended:
                return

    def report(self, stage: str, fraction: float | None = None) -> None:
        """Progress: the stage running now and how far the whole job is (0..1)."""
        self.stage = stage
        if fraction is not None:
            self.fraction = min(1.0, max(self.fraction, float(fraction)))


class JobQueue:
    def __init__(self, max_waiting: int = 4, keep: int = 32) -> None:
        if max_waiting < 0 or keep < 1:
            raise ValueError(f"max_waiting must be >= 0 and keep >= 1, got {max_waiting} and {keep}")
        self.max_waiting = max_waiting
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._thread = threading.Thread(target=self._work, name="codeclm-demo-worker", daemon=True)
        self._thread.start()

    # --- the request side -------------------------------------------------------------------

    def submit(self, kind: str, fn: Callable[[Job], Any]) -> Job:
        with self._lock:
            active = sum(1 for j in self._jobs.values() if j.state in (QUEUED, RUNNING))
            if active >= 1 + self.max_waiting:  # one running, max_waiting waiting
                raise QueueFull(f"busy: the model is generating and {active - 1} more request(s) wait "
                                f"(at most {self.max_waiting}); try again in a moment")
            job = Job(secrets.token_hex(8), kind, fn, next(self._seq))
            self._jobs[job.id] = job
            self._prune()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """How many jobs run or wait before ``job`` (0 once it runs)."""
        if job.state != QUEUED:
            return 0
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.seq < job.seq and j.state in (QUEUED, RUNNING))

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    # --- the worker side --------------------------------------------------------------------

    def _prune(self) -> None:
        finished = [j for j in self._jobs.values() if j.state in (DONE, FAILED)]
        for job in finished[: max(0, len(finished) - self._keep)]:
            del self._jobs[job.id]

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            job.state, job.started = RUNNING, time.time()
            job.report("starting", 0.0)
            try:
                job.result = job.fn(job)
                job.state = DONE
                job.report("done", 1.0)
            except Exception as e:  # noqa: BLE001 - one failed request never stops the server
                job.error = str(e) or type(e).__name__
                job.state = FAILED
                log.warning("%s job %s failed: %s", job.kind, job.id, job.error, exc_info=log.isEnabledFor(logging.DEBUG))
            finally:
                job.end_audio()
                job.finished = time.time()
                job.fn = None  # type: ignore[assignment]  # drop the request's inputs
                with self._lock:
                    self._prune()
