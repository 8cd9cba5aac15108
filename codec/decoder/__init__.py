"""Second decoders: networks trained on a frozen codec's tokens to turn them back into audio
better or faster than the codec's own decoder.

- :mod:`codec.decoder.model`: :class:`TokenDecoder`, the dequantized latent of the first ``k``
  codebooks (any ``k``) plus a learned embedding of ``k`` in every norm layer, through ConvNeXt
  blocks at the frame rate and an inverse-STFT head (the Vocos layout); one checkpoint serves
  every bitrate.
- :mod:`codec.decoder.lightning_module`: its GAN training against the codec's discriminators and
  mel loss (the codec's own GAN step, :class:`codec.lightning_module.GANModule`), ``k`` drawn at
  random per batch.
- :mod:`codec.decoder.export`: ``model.safetensors`` + ``config.json``, tied to the codec by its
  ``codec_id``.
- :mod:`codec.decoder.tokenizer`: a tokenizer that encodes with the codec and decodes with the
  second decoder, as every command that decodes takes it (``--decoder DIR``).
"""

from codec.decoder.model import DecoderConfig, TokenDecoder

__all__ = ["DecoderConfig", "TokenDecoder"]
