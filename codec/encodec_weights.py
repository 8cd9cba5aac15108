"""The EnCodec variants and their weights: the package's pretrained download or a local file.

:data:`VARIANTS` names the two models (``encodec24k``, ``encodec48k``) with the architecture the
package's pretrained constructors build. :func:`load_pretrained` fetches a variant's weights through
the package; :func:`load_weights_file` reads a local ``.th`` with ``torch.load(...,
weights_only=True)`` or a ``.safetensors``, never by unpickling arbitrary objects, and checks every
key and shape against the variant (naming the other variant when the file holds its weights).
"""

from __future__ import annotations

import pickle
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import torch
from encodec import EncodecModel
from encodec.model import ROOT_URL


@dataclass(frozen=True)
class Variant:
    """One of the package's pretrained models: its names and the architecture it is built with."""

    spec: str
    model_name: str  # the package's name, also part of ``codec_id``'s config
    builder: str  # the package's pretrained constructor
    checkpoint: str  # the package's weights file
    bandwidths: tuple[float, ...]
    sample_rate: int
    channels: int
    causal: bool
    norm: str
    normalize: bool
    segment: float | None

    def build(self) -> EncodecModel:
        """The architecture as the package's pretrained constructor builds it, with random weights."""
        with _quiet_package():
            return EncodecModel._get_model(
                list(self.bandwidths), self.sample_rate, self.channels, causal=self.causal,
                model_norm=self.norm, audio_normalize=self.normalize, segment=self.segment, name=self.model_name,
            )


VARIANTS: dict[str, Variant] = {
    "encodec24k": Variant("encodec24k", "encodec_24khz", "encodec_model_24khz", "encodec_24khz-d7cc33bc.th",
                          (1.5, 3.0, 6.0, 12.0, 24.0), 24_000, 1, True, "weight_norm", False, None),
    "encodec48k": Variant("encodec48k", "encodec_48khz", "encodec_model_48khz", "encodec_48khz-7e698e3e.th",
                          (3.0, 6.0, 12.0, 24.0), 48_000, 2, False, "time_group_norm", True, 1.0),
}


def load_pretrained(variant: Variant) -> EncodecModel:
    try:
        with _quiet_package():
            return getattr(EncodecModel, variant.builder)()
    except Exception as e:  # no network, a proxy's error page, a bad checksum: all end the same way
        raise RuntimeError(
            f"could not fetch the pretrained {variant.spec} weights ({type(e).__name__}: {_first_line(e)}); "
            f"download {ROOT_URL}{variant.checkpoint} and pass '{variant.spec}:/path/to/{variant.checkpoint}'"
        ) from None


def load_weights_file(variant: Variant, path: Path) -> EncodecModel:
    state = _read_state_dict(variant, path)
    model = variant.build()
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        guess = _guess_variant(state)
        hint = f"; it looks like {guess} weights: use '{guess}:{path}'" if guess and guess != variant.spec else ""
        raise ValueError(f"{path}: not {variant.spec} weights: {len(missing)} missing keys (e.g. {missing[:2]}), "
                         f"{len(unexpected)} unexpected keys (e.g. {unexpected[:2]}){hint}")
    for key, want in expected.items():
        if state[key].shape != want.shape:
            raise ValueError(f"{path}: not {variant.spec} weights: {key} has shape {tuple(state[key].shape)}, "
                             f"expected {tuple(want.shape)}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def _read_state_dict(variant: Variant, path: Path) -> Mapping[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: EnCodec weights file not found; "
                                f"pass '{variant.spec}:/path/to/{variant.checkpoint}'")
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as e:
            raise ValueError(f"{path}: not a readable safetensors file ({_first_line(e)})") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(e))
            if found:
                raise ValueError(
                    f"{path}: refused: it holds the Python object {found.group(1)}, not only tensors, and loading "
                    "it could run code; save a plain state dict (torch.save(model.state_dict())) or .safetensors"
                ) from None
            raise ValueError(f"{path}: not a PyTorch weights file (corrupt or another format)") from None
        except Exception as e:
            raise ValueError(f"{path}: not a readable PyTorch weights file "
                             f"({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ValueError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors (EnCodec weights)")
    return state


def _guess_variant(state: Mapping[str, torch.Tensor]) -> str | None:
    codebooks = sum(1 for k in state if k.startswith("quantizer.vq.layers.") and k.endswith("._codebook.embed"))
    if codebooks == 32 and any(k.endswith(".weight_g") for k in state):
        return "encodec24k"
    if codebooks == 16 and any(".conv.norm." in k for k in state):
        return "encodec48k"
    return None


@contextmanager
def _quiet_package() -> Iterator[None]:
    """Hide the package's use of the deprecated ``torch.nn.utils.weight_norm`` (not ours to change)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r".*torch\.nn\.utils\.weight_norm.*is deprecated", FutureWarning)
        yield


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else "no details"
