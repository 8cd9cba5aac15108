"""Token batches from token shards, with the text encoded for conditioning."""

from __future__ import annotations

import lightning as L

from data.skips import SkipCounter
from data.tokens import TokenLoaderConfig, token_dataset
from data.webdataset import ShardLoader


def text_encoder(kind: str, path: str | None):
    """``text`` -> sentencepiece ids, ``phonemes`` -> phoneme ids, ``none`` -> None."""
    if kind == "none":
        return None
    if not path:
        raise ValueError(f"text={kind!r} needs text_model: a sentencepiece .model or a phonemes.json")
    if kind == "text":
        from data.text import SpmTokenizer

        return SpmTokenizer(path)
    if kind == "phonemes":
        from data.text import PhonemeVocab

        return PhonemeVocab.load(path)
    raise ValueError(f"unknown text kind {kind!r}: choose none, text or phonemes")


class TokenDataModule(L.LightningDataModule):
    """Args:
        shards: token shard spec (from ``codeclm codec tokenize``).
        val_shards: validation token shards, or None.
        loader: batch and crop settings (:class:`TokenLoaderConfig`; ``loader.text`` picks the
            conditioning text: none, text (sentencepiece) or phonemes).
        text_model: the sentencepiece ``.model`` or ``phonemes.json`` for ``loader.text``.
        num_workers: DataLoader worker processes per rank.
    """

    def __init__(self, shards: str, val_shards: str | None = None, loader: TokenLoaderConfig | None = None,
                 text_model: str | None = None, num_workers: int = 2) -> None:
        super().__init__()
        self.shards, self.val_shards = shards, val_shards
        self.cfg = loader or TokenLoaderConfig()
        self.text_model = text_model
        self.num_workers = num_workers
        self.skips = SkipCounter()
        self._encoder = None
        self._train: ShardLoader | None = None

    @property
    def encoder(self):
        """The text encoder, loaded on first use (so a config can be checked without the files)."""
        if self._encoder is None:
            self._encoder = text_encoder(self.cfg.text, self.text_model)
        return self._encoder

    def train_dataloader(self) -> ShardLoader:
        if self._train is None:
            ds = token_dataset(self.shards, self.cfg, True, self.encoder, self.skips)
            self._train = ShardLoader(ds, num_workers=self.num_workers)
        if self.trainer is not None:
            self._train.set_epoch(self.trainer.current_epoch)
        return self._train

    def val_dataloader(self):
        if not self.val_shards:
            return []
        return ShardLoader(token_dataset(self.val_shards, self.cfg, False, self.encoder, self.skips),
                           num_workers=self.num_workers)
