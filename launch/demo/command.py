"""``codeclm demo``: a local web page for voice cloning and continuation.

    codeclm demo [--models DIR] [--host 127.0.0.1] [--port 7860]
    codeclm demo --codec SPEC [--ar AR.ckpt --nar NAR.ckpt --text-model phonemes.json] \\
        [--coarse CKPT --fine CKPT [--semantic CKPT --semantic-model DIR]]

The model options are those of ``codeclm generate clone`` and ``generate continue``; each one not
given is taken from the ``--models`` run folder (a ``codeclm quickstart --out`` folder, default
``runs/quickstart`` when it exists; see ``launch/run_layout.py``). A section of the page is off
(and says why) when its models were neither given nor found. The server listens on localhost only
unless ``--allow-remote`` is given with another ``--host``.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

from launch.commands.codec import decoder_arg
from launch.commands.generate_clone import length_args, length_config
from launch.commands.generate_continue import stage_checkpoint_args
from launch.run_layout import add_models_option, resolve_demo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="a local web page: voice cloning and continuation with trained models",
                       description="Serve a web page for voice cloning (VALL-E --ar/--nar) and continuation "
                                   "(AudioLM --coarse/--fine[/--semantic]) with the given models.")
    add_models_option(p)
    p.add_argument("--codec", metavar="SPEC",
                   help="the codec the LMs were trained on: export directory, .ckpt, or encodec24k / encodec48k "
                        "(default: the --models folder's)")
    decoder_arg(p)
    g = p.add_argument_group("voice cloning (as `codeclm generate clone`)")
    g.add_argument("--ar", help="VALL-E AR stage checkpoint (.ckpt from `codeclm lm fit`)")
    g.add_argument("--nar", help="VALL-E NAR stage checkpoint")
    g.add_argument("--text-model", default=None,
                   help="phonemes.json or sentencepiece .model the VALL-E stages use (default: the --models folder's)")
    g.add_argument("--voice", default="en-us", help="espeak-ng voice for phonemizing (phoneme text models)")
    length_args(g)
    stage_checkpoint_args(p.add_argument_group("continuation (as `codeclm generate continue`)"))
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    g.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    g.add_argument("--allow-remote", action="store_true",
                   help="allow a --host other than localhost: anyone who reaches it can use the models")
    g.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    g = p.add_argument_group("limits")
    g.add_argument("--max-upload-mb", type=float, default=10.0, help="largest request body (default 10)")
    g.add_argument("--min-prompt-seconds", type=float, default=1.0, help="shortest prompt (default 1)")
    g.add_argument("--max-prompt-seconds", type=float, default=10.0, help="longest prompt (default 10)")
    g.add_argument("--max-seconds", type=float, default=10.0, help="longest audio a request may generate (default 10)")
    g.add_argument("--max-text-chars", type=int, default=300, help="longest text to speak (default 300)")
    g.add_argument("--queue-size", type=int, default=4, help="requests that may wait while one generates (default 4)")
    g = p.add_argument_group("sampling defaults shown on the page")
    g.add_argument("--temperature", type=float, default=0.8)
    g.add_argument("--top-k", type=int, default=50)
    g.add_argument("--top-p", type=float, default=None)
    g.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> str | None:
    """None for a loopback host; the warning to print for another one with ``allow_remote``;
    ValueError without it."""
    if is_loopback(host):
        return None
    if not allow_remote:
        raise ValueError(f"--host {host} would expose the demo beyond this machine: add --allow-remote to mean it, "
                         "or leave --host at 127.0.0.1")
    return (f"WARNING: the demo listens on {host}: anyone who can reach this address can upload audio and run "
            "the models. It has no login; keep it behind a firewall.")


def build_engine(a: argparse.Namespace):
    """Load the models the arguments name; a :class:`~launch.demo.engine.DemoEngine`."""
    from launch.demo.engine import Defaults, DemoEngine, Limits

    resolve_demo(a)  # the models not given, from the run folder; what is missing, named
    if bool(a.ar) != bool(a.nar):
        raise ValueError("--ar and --nar go together: give both (voice cloning) or neither")
    if bool(a.coarse) != bool(a.fine):
        raise ValueError("--coarse and --fine go together: give both (continuation) or neither")
    if bool(a.semantic) != bool(a.semantic_model):
        raise ValueError("--semantic and --semantic-model go together: give both or neither")
    if a.semantic and not a.coarse:
        raise ValueError("--semantic needs --coarse and --fine too")
    if not a.ar and not a.coarse:
        raise ValueError("no models: give --ar and --nar (voice cloning) and/or --coarse and --fine (continuation)")
    limits = Limits(max_upload_mb=a.max_upload_mb, min_prompt_seconds=a.min_prompt_seconds,
                    max_prompt_seconds=a.max_prompt_seconds, max_text_chars=a.max_text_chars,
                    max_seconds=a.max_seconds, max_waiting=a.queue_size)
    if not 0 < limits.min_prompt_seconds <= limits.max_prompt_seconds or limits.max_seconds <= 0:
        raise ValueError("prompt limits must satisfy 0 < --min-prompt-seconds <= --max-prompt-seconds, "
                         "and --max-seconds must be > 0")
    if limits.max_upload_mb <= 0 or limits.max_text_chars < 1 or limits.max_waiting < 0:
        raise ValueError("--max-upload-mb and --max-text-chars must be > 0 and --queue-size >= 0")
    from audiolm.sampling import SamplingConfig

    SamplingConfig(temperature=a.temperature, top_k=a.top_k, top_p=a.top_p, seed=a.seed)  # range checks
    length_config(a)  # range checks
    defaults = Defaults(temperature=a.temperature, top_k=a.top_k, top_p=a.top_p, seed=a.seed,
                        min_length_ratio=a.min_length_ratio, max_length_ratio=a.max_length_ratio)
    clone_models = continue_models = None
    if a.ar:
        from launch.commands.speak import load_clone_models

        clone_models = load_clone_models(a.codec, a.ar, a.nar, a.text_model, a.voice, a.device, decoder=a.decoder)
    if a.coarse:
        from launch.commands.generate_continue import load_continue_models

        continue_models = load_continue_models(a.codec, a.coarse, a.fine, a.semantic, a.semantic_model,
                                               a.coarse_config, a.fine_config, a.semantic_config, a.device,
                                               decoder=a.decoder)
    return DemoEngine(clone_models, continue_models, limits, defaults,
                      clone_missing="this server was started without --ar and --nar (VALL-E checkpoints)",
                      continue_missing="this server was started without --coarse and --fine (AudioLM checkpoints)")


def run(a: argparse.Namespace) -> int:
    warning = check_host(a.host, a.allow_remote)
    if not 0 < a.port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {a.port}")
    if warning:
        print(warning, file=sys.stderr, flush=True)
    import uvicorn

    from launch.demo.app import create_app

    engine = build_engine(a)
    app = create_app(engine)
    shown = f"[{a.host}]" if ":" in a.host else a.host
    on = [name for name, m in (("voice cloning", engine.clone_models), ("continuation", engine.continue_models)) if m]
    print(f"codeclm demo ({', '.join(on)}) on http://{shown}:{a.port}/  (Ctrl+C stops it)", flush=True)
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning")
    return 0
