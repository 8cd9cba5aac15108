"""Text for conditioning: sentencepiece models trained on the corpus' transcripts, and a
phoneme vocabulary over espeak's IPA symbols (the alternative text representation for TTS).

Id 0 is padding in both, so padded text batches need no extra bookkeeping.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterator

from data.skips import SkipCounter
from data.urls import expand_urls
from data.webdataset import read_shard


def iter_metadata(shards: str, skips: SkipCounter | None = None) -> Iterator[dict]:
    """Every sample's json from a shard spec, in order (bad json counted and skipped)."""
    skips = skips or SkipCounter()
    for url in expand_urls(shards).urls:
        for sample in read_shard(url, skips):
            if "json" not in sample:
                continue
            try:
                yield json.loads(sample["json"])
            except ValueError as e:
                skips.add("bad_json", url, sample.get("__key__"), str(e))


def train_spm(shards: str, vocab_size: int, out: str | Path, model_type: str = "unigram",
              field: str = "text", hard_limit: bool = True) -> Path:
    """Train a sentencepiece model on the ``field`` of every sample; writes ``out`` (.model) and
    its ``.vocab`` beside it. Returns the model path. ``hard_limit=False`` lets a small corpus
    end with fewer pieces than asked instead of failing."""
    import sentencepiece as spm

    lines = [m[field].strip() for m in iter_metadata(shards) if isinstance(m.get(field), str) and m[field].strip()]
    if not lines:
        raise ValueError(f"no '{field}' transcripts found in {shards}: shard a corpus with transcripts first")
    out = Path(out)
    if out.suffix != ".model":
        raise ValueError(f"{out}: the sentencepiece model path must end in .model")
    out.parent.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type=model_type,
            character_coverage=1.0, pad_id=0, unk_id=1, bos_id=2, eos_id=3, input_sentence_size=2_000_000,
            shuffle_input_sentence=True, num_threads=2, minloglevel=2, hard_vocab_limit=hard_limit,
        )
    except RuntimeError as e:
        raise ValueError(f"sentencepiece could not train a {vocab_size}-piece model on {len(lines)} lines: {e}") from None
    out.write_bytes(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    out.with_suffix(".vocab").write_text("".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i)}\n" for i in range(sp.get_piece_size())))
    return out


class SpmTokenizer:
    """Text to piece ids with a trained sentencepiece model (0 = pad, 1 = unk, 2 = bos, 3 = eos)."""

    def __init__(self, model_path: str | Path) -> None:
        import sentencepiece as spm

        p = Path(model_path)
        if not p.exists():
            raise FileNotFoundError(f"no sentencepiece model at {p}: train one with `codeclm data spm`")
        self.sp = spm.SentencePieceProcessor(model_file=str(p))
        self.vocab_size = self.sp.get_piece_size()

    def __call__(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode([i for i in ids if i > 3])


class PhonemeVocab:
    """IPA symbols (one code point each; spaces mark word breaks) to ids. 0 = pad, 1 = unknown."""

    PAD, UNK = 0, 1

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = ["<pad>", "<unk>"] + [s for s in symbols if s not in ("<pad>", "<unk>")]
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.vocab_size = len(self.symbols)

    @classmethod
    def fit(cls, phoneme_strings) -> "PhonemeVocab":
        seen = sorted({ch for s in phoneme_strings for ch in s})
        return cls(seen)

    def __call__(self, phonemes: str) -> list[int]:
        return [self.index.get(ch, self.UNK) for ch in phonemes]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.symbols[i] for i in ids if i > 1)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"format": "codeclm.phonemes/1", "symbols": self.symbols[2:]}, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> "PhonemeVocab":
        data = json.loads(Path(path).read_text())
        if data.get("format") != "codeclm.phonemes/1":
            raise ValueError(f"{path} is not a codeclm phoneme vocabulary")
        return cls(data["symbols"])
