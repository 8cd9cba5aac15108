"""VALL-E autoregressive stage: text tokens, then codebook 0 of the codec, one token at a time.

``ValleAR(cfg)`` is a decoder-only prefix LM over one sequence ``[text ; BOS a_0 ... a_{T-1}]``:

- text (phoneme or sentencepiece ids, 0 = padding) has its own embedding; the audio tokens of
  codebook 0 have another, with two extra ids ``BOS = cardinality + 1`` (input only) and
  ``EOS = cardinality`` (predicted after the last frame);
- attention is bidirectional inside the text block and causal over the audio
  (``prefix_causal_mask`` over the padded text block), padded text and audio are masked keys;
- RoPE positions restart at 0 for the audio segment (text ``0..L-1``, audio ``0..T``), so the
  padding between a short text and its audio never shifts a position, and the distance between
  an audio token and a text token depends on neither the batch's padding nor the prompt; with
  ``audio_position_scale = s`` audio input ``t`` sits at position ``t * s`` instead: at ``s`` = text
  tokens per frame of the training speech, a frame and the phoneme it says are at the same
  position, a monotonic-alignment prior that a small model otherwise takes thousands of steps to
  find by itself;
- the head predicts ``cardinality + 1`` classes (the codes and EOS) at every audio position.

``loss(batch)`` trains next-token prediction of codebook 0 with EOS after the last real frame
(``LMOutput.codebook_loss`` has one entry). ``prefill`` / ``step`` run cached decoding (see
``valle_generate.py``).

The model's config travels inside its ``state_dict`` (``_extra_state``, plain dict of numbers
and strings), so a Lightning checkpoint of ``LMModule`` is enough to rebuild the model:
:func:`audiolm.models.valle_generate.load_stage` reads it back. The AR stage's extra state also
holds ``length_stats`` (:class:`audiolm.models.valle_length.LengthStats`: frames per text token
over its training utterances, added by ``LMModule`` during ``lm fit``), from which generation
bounds the length of new speech.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from audiolm.nn import KVCache, Transformer, TransformerConfig, init_weights, prefix_causal_mask
from audiolm.models.valle_length import LengthStats
from audiolm.output import LMOutput, masked_codebook_stats
from data.batch import TokenBatch


@dataclass
class ValleConfig:
    """text_vocab: text/phoneme vocabulary size (0 = padding); cardinality: codes per codebook;
    num_codebooks: K codebooks (the NAR stage predicts 1..K-1; the AR stage uses codebook 0 only);
    dim / layers / heads: transformer size; max_text: longest text (prompt + target) in tokens;
    max_frames: longest audio (prompt + generated) in frames; dropout: transformer dropout;
    prompt_min / prompt_max: NAR training, fraction of each utterance used as acoustic prompt.
    audio_position_scale: RoPE position step of the audio tokens (see the module doc; 1 = one a frame).
    """

    text_vocab: int = 256
    cardinality: int = 1024
    num_codebooks: int = 8
    dim: int = 256
    layers: int = 4
    heads: int = 4
    max_text: int = 256
    max_frames: int = 1500
    dropout: float = 0.0
    mlp_ratio: float = 4.0
    prompt_min: float = 0.25
    prompt_max: float = 0.5
    audio_position_scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.audio_position_scale > 0:
            raise ValueError(f"ValleConfig.audio_position_scale must be > 0, got {self.audio_position_scale}")
        for name in ("text_vocab", "cardinality", "num_codebooks", "dim", "layers", "heads", "max_text", "max_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"ValleConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.prompt_min <= self.prompt_max < 1:
            raise ValueError(f"ValleConfig: need 0 <= prompt_min <= prompt_max < 1, got "
                             f"{self.prompt_min}, {self.prompt_max}")

    def transformer(self, extra_positions: int) -> TransformerConfig:
        return TransformerConfig(dim=self.dim, num_layers=self.layers, num_heads=self.heads,
                                 max_seq_len=self.max_text + self.max_frames + extra_positions,
                                 mlp_ratio=self.mlp_ratio, dropout=self.dropout)


def text_inputs(batch: TokenBatch, cfg: ValleConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``text_tokens [B, L]`` and ``text_lengths [B]`` of ``batch``, checked against ``cfg``."""
    if batch.text_tokens is None or batch.text_lengths is None:
        raise ValueError("VALL-E needs text: set data.loader.text to phonemes (or text) and data.text_model")
    text, lengths = batch.text_tokens, batch.text_lengths.to(batch.text_tokens.device)
    if text.shape[1] > cfg.max_text:
        raise ValueError(f"a text of {text.shape[1]} tokens exceeds max_text {cfg.max_text}: raise "
                         "model cfg.max_text or lower data.loader.max_frames")
    if text.numel() and int(text.max()) >= cfg.text_vocab:
        raise ValueError(f"text id {int(text.max())} >= text_vocab {cfg.text_vocab}: raise cfg.text_vocab "
                         "to the size of the text model's vocabulary")
    return text, lengths


def check_codes(codes: torch.Tensor, cfg: ValleConfig) -> None:
    if codes.numel() and (int(codes.max()) >= cfg.cardinality or int(codes.min()) < 0):
        raise ValueError(f"codes lie in [{int(codes.min())}, {int(codes.max())}], outside [0, {cfg.cardinality}): "
                         "set cfg.cardinality to the codec's codebook size")
    if codes.shape[-1] > cfg.max_frames:
        raise ValueError(f"{codes.shape[-1]} frames exceed max_frames {cfg.max_frames}: crop with "
                         "data.loader.max_frames or raise cfg.max_frames")


def _filled(config: dict[str, Any]) -> dict[str, Any] | None:
    """``config`` with the defaults of fields it lacks (None when it is not a ValleConfig)."""
    try:
        return asdict(ValleConfig(**config))
    except (TypeError, ValueError):
        return None


class StageConfigState(nn.Module):
    """Keeps ``cfg`` (a :class:`ValleConfig`) in the state dict as ``_extra_state``, with the
    stage's ``length_stats`` when it has them (a checkpoint without them loads as none measured)."""

    kind = "stage"
    cfg: ValleConfig
    length_stats: LengthStats | None = None

    def get_extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"kind": self.kind, "config": asdict(self.cfg)}
        if self.length_stats is not None:
            state["length_stats"] = self.length_stats.state_dict()
        return state

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict):
            # torch.distributed.checkpoint (FSDP) passes a placeholder for extra state it does not
            # carry; the model's config was checked when the full state dict was read
            return
        saved = state.get("config")
        # fields added since a checkpoint was written take their defaults
        if state.get("kind") != self.kind or not isinstance(saved, dict) or _filled(saved) != asdict(self.cfg):
            raise ValueError(f"checkpoint holds a {state.get('kind')} model with config {state.get('config')}, "
                             f"not this {self.kind} model ({asdict(self.cfg)})")
        if self.length_stats is not None:
            self.length_stats.load_state_dict(state.get("length_stats") or LengthStats().state_dict())


class ValleAR(StageConfigState):
    """VALL-E AR stage; see the module doc. ``forward(text, text_lengths, audio, audio_lengths)``
    -> logits ``[B, Ta, cardinality + 1]`` at every audio input position."""

    kind = "valle_ar"

    def __init__(self, cfg: ValleConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.length_stats = LengthStats()  # frames per text token of the training data (``LMModule`` adds)
        self.eos, self.bos = cfg.cardinality, cfg.cardinality + 1
        self.text_emb = nn.Embedding(cfg.text_vocab, cfg.dim)
        self.audio_emb = nn.Embedding(cfg.cardinality + 2, cfg.dim)
        self.transformer = Transformer(cfg.transformer(extra_positions=2))
        self.head = nn.Linear(cfg.dim, cfg.cardinality + 1, bias=False)
        init_weights(self, cfg.layers)

    def _inputs(self, text: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedded sequence ``[B, L + Ta, D]`` and its RoPE positions ``[L + Ta]``."""
        x = torch.cat([self.text_emb(text), self.audio_emb(audio)], dim=1)
        dev = text.device
        positions = torch.cat([torch.arange(text.shape[1], device=dev, dtype=torch.float32),
                               torch.arange(audio.shape[1], device=dev, dtype=torch.float32) * self.cfg.audio_position_scale])
        return x, positions

    def forward(self, text: torch.Tensor, text_lengths: torch.Tensor, audio: torch.Tensor,
                audio_lengths: torch.Tensor) -> torch.Tensor:
        """text ``[B, L]`` (0-padded, ``text_lengths [B]``), audio inputs ``[B, Ta]`` (BOS first,
        right-padded, ``audio_lengths [B]`` counting BOS) -> logits ``[B, Ta, cardinality + 1]``."""
        (b, l), (b2, ta) = text.shape, audio.shape
        if b != b2 or text_lengths.shape != (b,) or audio_lengths.shape != (b,):
            raise ValueError(f"text {tuple(text.shape)}, audio {tuple(audio.shape)}, lengths "
                             f"{tuple(text_lengths.shape)}/{tuple(audio_lengths.shape)} disagree")
        x, positions = self._inputs(text, audio)
        dev = text.device
        valid = torch.cat([torch.arange(l, device=dev)[None] < text_lengths[:, None],
                           torch.arange(ta, device=dev)[None] < audio_lengths[:, None]], dim=1)  # [B, S]
        mask = prefix_causal_mask(l, l + ta, device=dev)  # [S, S]
        h = self.transformer(x, positions=positions, attn_mask=mask, key_padding_mask=valid)
        return self.head(h[:, l:])

    def loss(self, batch: TokenBatch) -> LMOutput:
        text, text_lengths = text_inputs(batch, self.cfg)
        codes0 = batch.codes[:, 0]  # [B, T]
        check_codes(codes0, self.cfg)
        lengths = batch.lengths.to(codes0.device)
        b, t = codes0.shape
        bos = torch.full((b, 1), self.bos, dtype=codes0.dtype, device=codes0.device)
        inputs = torch.cat([bos, codes0], dim=1)  # [B, T + 1]
        frame = torch.arange(t + 1, device=codes0.device)[None]  # [1, T + 1]
        targets = torch.cat([codes0, torch.zeros_like(bos)], dim=1)
        targets = torch.where(frame == lengths[:, None], self.eos, targets)  # EOS after the last frame
        target_mask = frame <= lengths[:, None]
        logits = self(text, text_lengths, inputs, lengths + 1)  # [B, T + 1, V]
        return masked_codebook_stats(logits[:, None], targets[:, None], target_mask[:, None])

    # --- cached decoding (batch rows share one length: no padding) --------------------------

    def prefill(self, text: torch.Tensor, audio: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Write ``[text [B, L] ; audio [B, Ta]]`` (audio starting with BOS) into an empty cache;
        returns the logits ``[B, cardinality + 1]`` for the next audio token."""
        if cache.length:
            raise ValueError("prefill needs an empty cache (call cache.reset())")
        x, positions = self._inputs(text, audio)
        l = text.shape[1]
        mask = prefix_causal_mask(l, x.shape[1], device=x.device)
        h = self.transformer(x, positions=positions, attn_mask=mask, cache=cache)
        return self.head(h[:, -1])

    def step(self, token: torch.Tensor, position: int, cache: KVCache) -> torch.Tensor:
        """Feed audio tokens ``[B]`` at audio position ``position``; returns next logits ``[B, V]``."""
        x = self.audio_emb(token[:, None])  # [B, 1, D]
        pos = torch.tensor([position * self.cfg.audio_position_scale], device=token.device, dtype=torch.float32)
        h = self.transformer(x, positions=pos, cache=cache)
        return self.head(h[:, -1])
