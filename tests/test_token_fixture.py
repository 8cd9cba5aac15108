"""The shared token-shard fixture is real: codes from the codec, text and speakers kept."""

import torch

from data.tokens import TokenLoaderConfig, token_dataset
from data.token_datamodule import text_encoder
from data.webdataset import ShardLoader


def test_token_shards_carry_codes_text_and_speakers(speech_token_shards):
    f = speech_token_shards
    enc = text_encoder("phonemes", str(f["phonemes"]))
    ds = token_dataset(str(f["tokens"]), TokenLoaderConfig(batch_size=4, max_frames=None, text="phonemes"),
                       train=False, text_encoder=enc)
    batches = list(ShardLoader(ds))
    assert sum(len(b) for b in batches) >= 8
    b = batches[0]
    assert b.codes.shape[1] == f["codec"].num_codebooks and b.frame_rate == f["codec"].frame_rate
    assert b.text_tokens is not None and (b.text_lengths > 0).all()
    assert len(set(s for b in batches for s in b.speakers)) == 4
    assert b.codes.max() < f["codec"].cardinality
    real = [torch.cat([c.codes[i, k, : int(c.lengths[i])] for c in batches for i in range(len(c))])
            for k in range(b.codes.shape[1])]  # each level's codes over every batch, padding left out
    used = [len(level.unique()) for level in real]
    assert all(n > 4 for n in used), used  # every level uses more than a few codes
