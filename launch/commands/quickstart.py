"""``codeclm quickstart``: the whole pipeline on the built-in corpus, under one folder.

Every step reuses what an earlier run already made, so running it again is cheap.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="build the default corpus and run the pipeline on it")
    p.add_argument("--out", default="runs/quickstart")
    p.add_argument("--hours", type=float, default=1.0, help="hours of built-in speech (default 1)")
    p.add_argument("--speakers", type=int, default=48)
    p.add_argument("--workers", type=int, default=0)
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    from data.corpus.speech import SpeechCorpusConfig, build_speech
    from data.text import PhonemeVocab, iter_metadata, train_spm
    from launch.commands.data import _workers, print_summary, summarize

    out = Path(a.out)
    made: list[tuple[str, Path]] = []
    t0 = time.time()

    print("[1/2] speech corpus (espeak-ng, many synthetic speakers) -> webdataset shards")
    shards = out / "shards" / "speech"
    build_speech(SpeechCorpusConfig(out_dir=str(shards), hours=a.hours, sample_rate=16000, speakers=a.speakers,
                                    workers=_workers(a.workers)))
    summary = summarize(str(shards))
    print_summary(summary)
    made.append(("speech shards", shards))

    print("[2/2] text models: sentencepiece pieces and the phoneme vocabulary")
    spm_path = out / "text" / "spm.model"
    if not spm_path.exists():
        train_spm(str(shards), 512, spm_path)
    phon_path = out / "text" / "phonemes.json"
    if not phon_path.exists():
        PhonemeVocab.fit(m.get("phonemes", "") for m in iter_metadata(str(shards))).save(phon_path)
    made += [("sentencepiece model", spm_path), ("phoneme vocabulary", phon_path)]

    (out / "summary.json").write_text(json.dumps({"corpus": summary, "made": {k: str(v) for k, v in made}}, indent=1))
    print(f"\nquickstart done in {time.time() - t0:.0f}s. Made under {out}/:")
    for what, path in made:
        print(f"  {what:22s} {path}")
    print(f"  {'summary':22s} {out / 'summary.json'}")
    print(f"\nInspect the shards: tar tf {shards}/speech-000000.tar | head ; codeclm data info {shards}")
