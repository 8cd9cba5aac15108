"""Neural audio codecs: the tokenizer interface, the project's RVQ codec, and the EnCodec adapter."""

from codec.tokenizer import AudioTokenizer, codec_id

__all__ = ["AudioTokenizer", "codec_id"]
