"""The demo page in a real browser: headless Chromium (Debian's package, installed here when
missing) driven by Playwright uploads a prompt, types a sentence, clicks, hears the audio start
while the generation still runs, and gets a wav the browser can play, of the asked duration, plus
its pictures; then continues a recording from
Chromium's fake microphone. A screenshot is kept under
``runs/test-artifacts/``."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

from tests.demo.conftest import SR, demo_args
from tests.system_packages import apt_install

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "runs" / "test-artifacts"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]  # a fake microphone


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Debian's chromium, installed with apt-get when missing."""
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    why = apt_install("chromium")
    path = shutil.which("chromium")
    if why or path is None:
        pytest.skip(f"headless Chromium is needed for the browser test and could not be installed: {why or 'not found'}")
    return path


@pytest.fixture
def served(demo_models):
    """``codeclm demo``'s app under uvicorn on a free loopback port, in a thread."""
    import uvicorn

    from launch.demo.app import create_app
    from launch.demo.command import build_engine

    app = create_app(build_engine(demo_args(demo_models)))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    end = time.time() + 20
    while not server.started and time.time() < end:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_clone_in_a_real_browser(chromium, served, demo_models, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the dev extra) drives the browser")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1400}, accept_downloads=True)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(served)
            assert page.input_value("#temperature") == "0.8" and page.input_value("#seed") == "0"
            assert page.is_enabled("#continue-go")

            # a bad request: the server's message appears on the page
            page.set_input_files("#clone-prompt", str(demo_models["prompt"]))
            page.click("#clone-go")
            page.wait_for_selector("#clone[data-state=error]", timeout=15_000)
            assert "text is empty" in page.inner_text("#clone .out .error")

            page.fill("#clone-text", "Hello there, how are you today?")
            page.fill("#clone-seconds", "1.5")
            page.click("#clone-go")
            page.wait_for_selector("#clone[data-state=done]", timeout=45_000)
            assert not page.is_visible("#clone .out .error")
            duration = page.evaluate("""async () => {
                const a = document.getElementById('clone-audio');
                if (a.readyState < 1) await new Promise((ok, bad) => {
                    a.addEventListener('loadedmetadata', ok, {once: true});
                    a.addEventListener('error', () => bad(new Error('audio error ' + (a.error && a.error.code))));
                });
                return a.duration;
            }""")
            assert duration == pytest.approx(1.5, abs=0.01)  # the browser decodes and can play it
            # it played the audio while it was generated: the first sound was scheduled before the
            # job was done, and every sample of the result came through the stream
            page.wait_for_function("() => document.getElementById('clone').dataset.streamEnded", timeout=10_000)
            played = page.evaluate("() => ({...document.getElementById('clone').dataset})")
            assert float(played["firstAudioAt"]) < float(played["doneAt"]), played
            assert int(played["streamedSamples"]) == int(1.5 * SR), played
            page.wait_for_function("""() => { const imgs = [...document.querySelectorAll('#clone .pics img')];
                return imgs.length === 4 && imgs.every(i => i.complete && i.naturalWidth === 640); }""", timeout=10_000)
            assert "1.50 s at 16000 Hz" in page.inner_text("#clone .summary")

            with page.expect_download() as info:
                page.click("#clone-download")
            saved = tmp_path / info.value.suggested_filename
            info.value.save_as(saved)
            wav, sr = sf.read(saved)
            assert saved.suffix == ".wav" and sr == SR and len(wav) == int(1.5 * SR)

            # continuation from a microphone recording (Chromium's fake device: a beep), converted
            # to wav by the page before upload
            page.click("#continue .record")
            page.wait_for_function("() => document.querySelector('#continue .record').textContent === 'Stop'")
            page.wait_for_timeout(1600)
            page.click("#continue .record")
            page.wait_for_function("() => !document.querySelector('#continue .prompt-audio').hidden", timeout=10_000)
            page.fill("#continue-seconds", "0.5")
            page.click("#continue-go")
            page.wait_for_selector("#continue[data-state=done]", timeout=45_000)
            summary = page.inner_text("#continue .summary")
            assert "+ 50 new frames" in summary, summary
            recorded = float(summary.split(" s at ")[0]) - 0.5
            assert 1.0 <= recorded <= 3.0, summary

            shot = tmp_path / "demo-clone.png"
            page.screenshot(path=str(shot), full_page=True)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, ARTIFACTS / shot.name)
            assert shot.stat().st_size > 10_000
            assert not errors, errors
        finally:
            browser.close()
