"""The demo's web app (FastAPI): one HTML page and a small JSON API over a job queue.

    GET  /                      the page (launch/demo/page.html, shipped with the package)
    GET  /api/info              which sections are on, the limits and the sampling defaults
    POST /api/clone             multipart: prompt (file), text, prompt_text, seconds, temperature,
                                top_k, top_p, seed -> 202 {"job": id} | 400 / 413 / 503 {"error": msg}
    POST /api/continue          multipart: prompt (file), seconds, sampling fields -> as above
    GET  /api/jobs/{id}         state, stage, progress, queue position, error or result
    GET  /api/jobs/{id}/stream  the audio as it is generated: 16-bit little-endian mono PCM, chunked,
                                from the first sample (X-Sample-Rate gives the rate), ending with the job
    GET  /api/jobs/{id}/result.wav[?download=1]   the generated audio
    GET  /api/jobs/{id}/{name}.png                prompt-wave, prompt-spec, result-wave, result-spec

Every error a request can cause comes back as ``{"error": "..."}`` with a 4xx/5xx status; the
server goes on serving. Request bodies over the upload limit are refused before they are read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from launch.demo.engine import DemoEngine, DemoError
from launch.demo.jobs import DONE, FAILED, JobQueue, QueueFull

log = logging.getLogger("codeclm.demo")

IMAGE_NAMES = ("prompt-wave", "prompt-spec", "result-wave", "result-spec")


def error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 and a message. A declared
    Content-Length is checked before reading; a chunked body is counted as it arrives."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, int(max_bytes)

    def _too_large(self, size: str) -> JSONResponse:
        return error(413, f"upload too large ({size}): the limit is {self.max_bytes / 1e6:g} MB; "
                          "give a shorter prompt (a few seconds of speech)")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return await error(400, "bad Content-Length header")(scope, receive, send)
            if size > self.max_bytes:
                return await self._too_large(f"{size / 1e6:.1f} MB")(scope, receive, send)
            return await self.app(scope, receive, send)
        messages, total = [], 0  # no length given: read it all (bounded), then replay it
        while True:
            message = await receive()
            messages.append(message)
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                return await self._too_large(f"over {self.max_bytes / 1e6:g} MB")(scope, receive, send)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> dict:
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)


def create_app(engine: DemoEngine, jobs: JobQueue | None = None) -> FastAPI:
    """The app over ``engine``; ``jobs`` (default: a queue sized by the engine's limits) runs the
    generations one at a time."""
    jobs = jobs or JobQueue(max_waiting=engine.limits.max_waiting)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        jobs.close()

    app = FastAPI(title="codeclm demo", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.engine, app.state.jobs = engine, jobs
    app.add_middleware(BodyLimit, max_bytes=int(engine.limits.max_upload_mb * 1e6))
    page = resources.files("launch.demo").joinpath("page.html").read_text(encoding="utf-8")
    page = page.replace("__CODECLM_INFO__", json.dumps(engine.info()).replace("</", "<\\/"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error serving %s", request.url.path)
        return error(500, f"internal error: {type(exc).__name__}: {exc}")

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/api/info")
    def info() -> dict:
        return engine.info()

    async def submit(request: Request, kind: str) -> JSONResponse:
        try:
            form = await request.form(max_files=1, max_fields=20)
        except Exception as e:  # noqa: BLE001 - a malformed body is the client's error
            return error(400, f"could not read the form ({getattr(e, 'detail', e)}): send multipart/form-data")
        upload = form.get("prompt")
        if upload is None or isinstance(upload, str):
            return error(400, "no prompt audio: upload or record a few seconds of speech")
        data = await upload.read()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        prepare = engine.prepare_clone if kind == "clone" else engine.prepare_continue
        try:
            fn = await run_in_threadpool(prepare, data, upload.filename or "the upload", fields)
            job = jobs.submit(kind, fn)
        except DemoError as e:
            return error(400, str(e))
        except QueueFull as e:
            return error(503, str(e), **{"Retry-After": "10"})
        finally:
            await form.close()
        return JSONResponse({"job": job.id, "position": jobs.position(job)}, status_code=202)

    @app.post("/api/clone")
    async def clone(request: Request) -> JSONResponse:
        return await submit(request, "clone")

    @app.post("/api/continue")
    async def continue_(request: Request) -> JSONResponse:
        return await submit(request, "continue")

    def finished(job_id: str):
        job = jobs.get(job_id)
        if job is None:
            return None, error(404, "no such job (finished jobs are kept for a while only)")
        if job.state != DONE:
            return None, error(409, f"the job is {job.state}, not done")
        return job, None

    @app.get("/api/jobs/{job_id}")
    def status(job_id: str) -> JSONResponse:
        job = jobs.get(job_id)
        if job is None:
            return error(404, "no such job (finished jobs are kept for a while only)")
        now = job.finished or time.time()
        body: dict[str, Any] = {"id": job.id, "kind": job.kind, "state": job.state, "stage": job.stage,
                                "progress": round(job.fraction, 4), "position": jobs.position(job),
                                "elapsed": round(now - (job.started or now), 2), "error": job.error}
        if job.state == FAILED:
            body["stage"] = "failed"
        if job.state == DONE:
            out = job.result
            base = f"/api/jobs/{job.id}"
            body["result"] = {"duration": out.duration, "sample_rate": out.sample_rate, "seed": out.seed,
                              "summary": out.summary, "audio": f"{base}/result.wav",
                              "download": f"{base}/result.wav?download=1",
                              "images": {name: f"{base}/{name}.png" for name in out.images}}
        return JSONResponse(body)

    @app.get("/api/jobs/{job_id}/stream")
    def stream(job_id: str) -> Response:
        job = jobs.get(job_id)
        if job is None:
            return error(404, "no such job (finished jobs are kept for a while only)")
        rate = job.audio_rate or engine.sample_rate(job.kind)
        return StreamingResponse(job.audio_chunks(), media_type="application/octet-stream",
                                 headers={"X-Sample-Rate": str(rate), "Cache-Control": "no-store"})

    @app.get("/api/jobs/{job_id}/result.wav")
    def audio(job_id: str, download: int = 0) -> Response:
        job, err = finished(job_id)
        if err is not None:
            return err
        headers = {"Content-Disposition": f'attachment; filename="codeclm-{job.kind}-{job.id}.wav"'} if download else {}
        return Response(job.result.wav, media_type="audio/wav", headers=headers)

    @app.get("/api/jobs/{job_id}/{name}.png")
    def image(job_id: str, name: str) -> Response:
        job, err = finished(job_id)
        if err is not None:
            return err
        if name not in job.result.images:
            return error(404, f"no image {name!r}: one of {', '.join(IMAGE_NAMES)}")
        return Response(job.result.images[name], media_type="image/png")

    return app
