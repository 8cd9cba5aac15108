"""The demo server over tiny random models: results equal to `codeclm generate clone/continue`,
every limit and bad input answered with one clear message while the server keeps serving,
progress reports, and a queue that runs one generation at a time and says "busy" when full."""

from __future__ import annotations

import argparse
import io
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from launch.demo.app import create_app
from launch.demo.command import build_engine, check_host, is_loopback
from launch.demo.engine import DemoError
from launch.demo.jobs import Job, JobQueue
from tests.demo.conftest import SR, demo_args, speech_like
from tests.demo.test_demo_images import decode_png

TEXT = "Hello there, how are you today?"


def wav_upload(seconds: float, sr: int = SR, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, speech_like(seconds, sr, seed), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def engine(demo_models):
    return build_engine(demo_args(demo_models))


@pytest.fixture
def client(engine):
    app = create_app(engine)
    with TestClient(app) as c:
        yield c


def post(client, kind: str, prompt: bytes | None, name: str = "prompt.wav", **fields):
    files = {"prompt": (name, prompt, "audio/wav")} if prompt is not None else None
    return client.post(f"/api/{kind}", files=files, data={k: str(v) for k, v in fields.items()})


def wait(client, job: str, timeout: float = 60.0) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        body = client.get(f"/api/jobs/{job}").json()
        if body["state"] in ("done", "error"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job} did not finish in {timeout} s")


def run_cli(kind: str, argv: list[str]) -> None:
    from launch.commands import generate_clone, generate_continue

    parser = argparse.ArgumentParser()
    (generate_clone if kind == "clone" else generate_continue).register(parser.add_subparsers(dest="command"))
    args = parser.parse_args([kind, *argv])
    assert args.func(args) == 0


def test_page_is_self_contained_and_info_lists_sections(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    for needle in ('id="clone-prompt"', 'id="clone-text"', 'id="clone-go"', 'id="continue-go"', "MediaRecorder",
                   'id="temperature"', 'id="top_k"', 'id="top_p"', 'id="seed"', "<progress"):
        assert needle in html, needle
    assert "__CODECLM_INFO__" not in html and '"enabled": true' in html
    for external in ('src="http', "src='http", 'href="http', "@import", "url(http"):
        assert external not in html  # nothing fetched from the internet
    info = client.get("/api/info").json()
    assert info["clone"]["enabled"] and info["continue"]["enabled"]
    assert info["limits"]["max_prompt_seconds"] == 10 and info["defaults"]["temperature"] == 0.8


def test_clone_equals_the_generate_clone_command(client, demo_models, tmp_path):
    prompt = wav_upload(3.0)
    r = post(client, "clone", prompt, text=TEXT, seconds=1.5, temperature=0.9, top_k=20, top_p=0.95, seed=3)
    assert r.status_code == 202, r.text
    body = wait(client, r.json()["job"])
    assert body["state"] == "done" and body["progress"] == 1.0, body
    res = body["result"]
    assert res["seed"] == 3 and res["sample_rate"] == SR and res["duration"] == pytest.approx(1.5)
    audio = client.get(res["audio"])
    assert audio.headers["content-type"] == "audio/wav"
    got, sr = sf.read(io.BytesIO(audio.content), dtype="int16")
    assert sr == SR and got.shape == (int(1.5 * SR),)
    download = client.get(res["download"])
    assert download.content == audio.content and "attachment" in download.headers["content-disposition"]
    (tmp_path / "prompt.wav").write_bytes(prompt)
    m = demo_models
    run_cli("clone", ["--codec", str(m["codec"]), "--ar", str(m["ar"]), "--nar", str(m["nar"]), "--prompt",
                      str(tmp_path / "prompt.wav"), "--text", TEXT, "--out", str(tmp_path / "cli.wav"),
                      "--text-model", str(m["phonemes"]), "--temperature", "0.9", "--top-k", "20", "--top-p", "0.95",
                      "--seed", "3", "--max-seconds", "1.5", "--device", "cpu", "--stream"])
    ref, _ = sf.read(tmp_path / "cli.wav", dtype="int16")
    assert np.array_equal(got, ref)  # the page hears `generate clone --stream`
    stream = client.get(f"/api/jobs/{r.json()['job']}/stream")
    assert stream.status_code == 200 and stream.headers["x-sample-rate"] == str(SR)
    assert np.array_equal(np.frombuffer(stream.content, "<i2"), got)  # what it played as it came is the result
    for name in ("prompt-wave", "prompt-spec", "result-wave", "result-spec"):
        png = client.get(res["images"][name])
        assert png.headers["content-type"] == "image/png"
        img = decode_png(png.content)
        assert img.shape == (128, 640, 3) and len(np.unique(img.reshape(-1, 3), axis=0)) >= (2 if "wave" in name else 20)


def test_continue_equals_the_generate_continue_command(client, demo_models, tmp_path):
    prompt = wav_upload(2.0, seed=1)
    r = post(client, "continue", prompt, seconds=0.5, temperature=1.0, top_k=0, top_p=1, seed=5)
    assert r.status_code == 202, r.text
    body = wait(client, r.json()["job"])
    assert body["state"] == "done", body
    assert body["result"]["duration"] == pytest.approx(2.5)  # the prompt, then 0.5 s more
    got, sr = sf.read(io.BytesIO(client.get(body["result"]["audio"]).content), dtype="int16")
    (tmp_path / "prompt.wav").write_bytes(prompt)
    m = demo_models
    run_cli("continue", ["--codec", str(m["codec"]), "--coarse", str(m["coarse"]), "--fine", str(m["fine"]),
                         "--semantic", str(m["semantic"]), "--semantic-model", str(m["semantic_model"]),
                         "--prompt", str(tmp_path / "prompt.wav"), "--seconds", "0.5", "--out", str(tmp_path / "cli.wav"),
                         "--temperature", "1.0", "--seed", "5", "--device", "cpu", "--stream"])
    ref, _ = sf.read(tmp_path / "cli.wav", dtype="int16")
    assert sr == SR and got.shape == (int(2.5 * SR),) and np.array_equal(got, ref)


def truncated_wav() -> bytes:
    data = wav_upload(2.0)
    return data[: len(data) // 2]  # the header claims twice the samples present


BAD = {
    "not audio": (dict(prompt=b"this is a text file, not audio\n" * 50, name="notes.txt"), 400, "not audio"),
    "corrupt wav": (dict(prompt=truncated_wav()), 400, "not audio"),
    "no prompt": (dict(prompt=None), 400, "no prompt audio"),
    "empty prompt file": (dict(prompt=b""), 400, "no prompt audio"),
    "prompt too short": (dict(prompt=wav_upload(0.5)), 400, "give at least 1 s"),
    "prompt too long": (dict(prompt=wav_upload(12.0)), 400, "the limit is 10 s"),
    "empty text": (dict(text="   "), 400, "text is empty"),
    "text too long": (dict(text="la " * 150), 400, "too long: 449 characters, the limit is 300"),
    "too many seconds": (dict(seconds=60), 400, "request too long: 60 s asked"),
    "zero seconds": (dict(seconds=0), 400, "seconds must be above 0"),
    "temperature not a number": (dict(temperature="hot"), 400, "temperature must be a number"),
    "top-p out of range": (dict(top_p=1.5), 400, "top-p must be between 0 and 1"),
    "negative seed": (dict(seed=-1), 400, "seed must be between"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_requests_get_one_clear_message(client, case):
    change, status, message = BAD[case]
    fields = dict(text=TEXT, seconds=1.0, seed=0)
    prompt, name = change.pop("prompt", wav_upload(3.0)), change.pop("name", "prompt.wav")
    fields.update(change)
    r = post(client, "clone", prompt, name, **fields)
    assert r.status_code == status, r.text
    assert message in r.json()["error"], r.json()
    assert client.get("/api/info").status_code == 200  # still serving


def test_uploads_over_the_size_limit_are_refused_before_reading(client):
    big = b"\0" * int(10.5e6)
    r = post(client, "clone", big, text=TEXT)
    assert r.status_code == 413 and "upload too large" in r.json()["error"] and "10 MB" in r.json()["error"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(11):
            yield b"\0" * 1_000_000

    r = client.post("/api/continue", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "upload too large" in r.json()["error"]
    r = client.post("/api/clone", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 400 and r.json()["error"]
    ok = post(client, "clone", wav_upload(3.0), text=TEXT, seconds=0.3)  # and a good one still works
    assert ok.status_code == 202 and wait(client, ok.json()["job"])["state"] == "done"


def test_text_beyond_the_model_is_refused(demo_models):
    engine = build_engine(demo_args(demo_models, "--max-text-chars", "2000"))
    with pytest.raises(DemoError, match="request too long: the text is .* tokens .* at most 128"):
        engine.prepare_clone(wav_upload(3.0), "p.wav", {"text": "hello there " * 30})


def test_a_section_without_models_is_off_and_says_why(demo_models):
    engine = build_engine(demo_args(demo_models, cont=False))
    with TestClient(create_app(engine)) as c:
        info = c.get("/api/info").json()
        assert info["clone"]["enabled"] and not info["continue"]["enabled"]
        assert "--coarse and --fine" in info["continue"]["reason"]
        r = post(c, "continue", wav_upload(3.0), seconds=1)
        assert r.status_code == 400 and r.json()["error"].startswith("continuation is off")


def test_progress_is_reported_stage_by_stage(engine):
    fn = engine.prepare_clone(wav_upload(3.0), "p.wav", {"text": TEXT, "seconds": "0.5", "seed": "1"})
    job = Job("x", "clone", fn, 0)
    seen = []
    job.report = lambda stage, fraction=None: seen.append((stage, fraction))  # type: ignore[method-assign]
    out = fn(job)
    stages = [s for s, _ in seen]
    assert stages[0] == "encoding the prompt"
    assert [s for s in stages if s.startswith("speaking")][-1] == "speaking: frame 50 of at most 50 (4 codebooks)"
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] < 1.0
    assert out.duration == pytest.approx(0.5)
    # the audio went to the job chunk by chunk (25 frames of 100 Hz each), the result's own samples
    chunks = list(job.audio_chunks(timeout=0.1))
    assert len(chunks) >= 2 and sum(len(c) for c in chunks) == 2 * int(0.5 * SR)


def test_requests_queue_one_at_a_time_and_a_full_queue_says_busy(engine):
    jobs = JobQueue(max_waiting=2)
    gate = threading.Event()
    blocker = jobs.submit("hold", lambda job: gate.wait(30))
    with TestClient(create_app(engine, jobs)) as c:
        ids = []
        for _ in range(2):  # two wait behind the running one
            r = post(c, "clone", wav_upload(3.0), text=TEXT, seconds=0.3, seed=len(ids))
            assert r.status_code == 202, r.text
            ids.append(r.json()["job"])
        assert [c.get(f"/api/jobs/{i}").json()["position"] for i in ids] == [1, 2]
        assert c.get(f"/api/jobs/{ids[0]}").json()["state"] == "queued"
        full = post(c, "clone", wav_upload(3.0), text=TEXT, seconds=0.3)
        assert full.status_code == 503 and full.json()["error"].startswith("busy") and full.headers["retry-after"]
        gate.set()
        done = [wait(c, i) for i in ids]
        assert [d["state"] for d in done] == ["done", "done"]
        spans = sorted((jobs.get(j).started, jobs.get(j).finished) for j in [blocker.id, *ids])
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # never two at once
        again = post(c, "clone", wav_upload(3.0), text=TEXT, seconds=0.3)
        assert again.status_code == 202


def test_a_failing_job_reports_its_error_and_the_next_runs(engine):
    jobs = JobQueue(max_waiting=4)

    def boom(job):
        raise RuntimeError("the AR model ended the speech at once")

    with TestClient(create_app(engine, jobs)) as c:
        bad = jobs.submit("clone", boom)
        body = wait(c, bad.id)
        assert body["state"] == "error" and "ended the speech" in body["error"]
        assert c.get(f"/api/jobs/{bad.id}/result.wav").status_code == 409
        assert c.get("/api/jobs/nope").status_code == 404
        ok = post(c, "clone", wav_upload(3.0), text=TEXT, seconds=0.3)
        assert wait(c, ok.json()["job"])["state"] == "done"


def test_host_rules_and_argument_errors(demo_models, capsys, tmp_path, monkeypatch):
    from launch.cli import main

    monkeypatch.chdir(tmp_path)  # no runs/quickstart to take models from

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
    assert check_host("127.0.0.1", False) is None
    with pytest.raises(ValueError, match="--allow-remote"):
        check_host("0.0.0.0", False)
    assert "WARNING" in check_host("0.0.0.0", True)
    m = demo_models
    cases = [(["--host", "0.0.0.0"], "add --allow-remote"),
             (["--ar", str(m["ar"])], "--ar and --nar go together"),
             ([], "no models: give --ar and --nar"),
             (["--coarse", str(m["coarse"]), "--fine", str(m["fine"]), "--semantic", str(m["semantic"])],
              "--semantic and --semantic-model go together"),
             (["--ar", str(m["ar"]), "--nar", str(m["coarse"]), "--text-model", str(m["phonemes"])],
              "holds no VALL-E stage model")]
    for extra, message in cases:
        assert main(["demo", "--codec", str(m["codec"]), *extra]) == 2
        assert message in capsys.readouterr().err, extra
