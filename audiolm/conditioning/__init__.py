"""Conditioning for the audio LMs: a text encoder over sentencepiece ids and condition dropout
for classifier-free guidance.

``TextEncoder(TextEncoderConfig)(tokens [B, L], mask [B, L]) -> TextCondition`` (hidden
``[B, L, D]`` + mask); ``ConditionDropout(p)`` / ``drop_conditions`` drop a whole condition per
example.
"""

from audiolm.conditioning.dropout import ConditionDropout, drop_conditions, drop_mask
from audiolm.conditioning.text import TextCondition, TextEncoder, TextEncoderConfig, text_mask

__all__ = [
    "ConditionDropout", "TextCondition", "TextEncoder", "TextEncoderConfig", "drop_conditions", "drop_mask",
    "text_mask",
]
