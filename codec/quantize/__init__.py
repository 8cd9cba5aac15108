"""Vector quantizers for the codec: k-means, codebook levels (EMA or factorized), residual VQ.

``ResidualVectorQuantizer(RVQConfig(...))`` is what the codec uses; its training ``forward`` is
a collective that keeps codebooks bit-identical across DDP ranks (see ``vq.py``).
"""

from codec.quantize.factorized import FactorizedCodebook
from data.kmeans import kmeans, nearest
from codec.quantize.rvq import (
    QuantizerResult,
    ResidualVectorQuantizer,
    RVQConfig,
    code_stats,
    collapse_warning,
)
from codec.quantize.vq import CodebookOutput, EMACodebook, straight_through

__all__ = [
    "CodebookOutput",
    "EMACodebook",
    "FactorizedCodebook",
    "QuantizerResult",
    "RVQConfig",
    "ResidualVectorQuantizer",
    "code_stats",
    "collapse_warning",
    "kmeans",
    "nearest",
    "straight_through",
]
