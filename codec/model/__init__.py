"""The codec's convolutional encoder and decoder and the layers they are built from."""

from codec.model.activations import ACTIVATIONS, Snake, make_activation
from codec.model.bottleneck import LSTMBottleneck, TransformerBottleneck
from codec.model.conv import StreamableConv1d, StreamableConvTranspose1d, StreamingModule
from codec.model.seanet import (
    SEANetConfig,
    SEANetDecoder,
    SEANetEncoder,
    SEANetResidualUnit,
    make_bottleneck,
)

__all__ = [
    "ACTIVATIONS",
    "LSTMBottleneck",
    "SEANetConfig",
    "SEANetDecoder",
    "SEANetEncoder",
    "SEANetResidualUnit",
    "Snake",
    "StreamableConv1d",
    "StreamableConvTranspose1d",
    "StreamingModule",
    "TransformerBottleneck",
    "make_activation",
    "make_bottleneck",
]
