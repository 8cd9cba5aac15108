"""Audio examples and spectrogram images for whatever Lightning loggers a run has
(TensorBoard, wandb; CSV gets the numbers only)."""

from __future__ import annotations

import io

import torch


def spectrogram_image(wav: torch.Tensor, sample_rate: int, title: str = ""):
    """A matplotlib figure of the log-magnitude spectrogram of ``[T]`` audio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_fft = 1024 if sample_rate >= 22050 else 512
    spec = torch.stft(wav.float().cpu(), n_fft, n_fft // 4, window=torch.hann_window(n_fft), return_complex=True).abs()
    db = 20 * torch.log10(spec.clamp_min(1e-5))
    fig, ax = plt.subplots(figsize=(6, 2.5), dpi=80)
    ax.imshow(db.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=float(db.max()) - 80,
              extent=(0, wav.shape[-1] / sample_rate, 0, sample_rate / 2000))
    ax.set_xlabel("s")
    ax.set_ylabel("kHz")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def log_audio_examples(loggers, tag: str, pairs: list[tuple[torch.Tensor, torch.Tensor]], sample_rate: int, step: int) -> None:
    """Log (original, reconstruction) ``[C, T]`` pairs as audio and spectrograms."""
    import matplotlib.pyplot as plt

    for logger in loggers:
        name = type(logger).__name__
        for i, (ref, rec) in enumerate(pairs):
            figs = {f"{tag}/{i}/original": spectrogram_image(ref[0], sample_rate, "original"),
                    f"{tag}/{i}/reconstruction": spectrogram_image(rec[0], sample_rate, "reconstruction")}
            if name == "TensorBoardLogger":
                exp = logger.experiment
                for key, wav in ((f"{tag}/{i}/original", ref), (f"{tag}/{i}/reconstruction", rec)):
                    exp.add_audio(key, wav.float().clamp(-1, 1).mean(0).cpu(), step, sample_rate=sample_rate)
                for key, fig in figs.items():
                    exp.add_figure(key, fig, step)
            elif name == "WandbLogger":
                import wandb

                logger.experiment.log({
                    f"{tag}/{i}/original": wandb.Audio(ref.float().mean(0).cpu().numpy(), sample_rate=sample_rate),
                    f"{tag}/{i}/reconstruction": wandb.Audio(rec.float().mean(0).cpu().numpy(), sample_rate=sample_rate),
                    **{k: wandb.Image(_png(f)) for k, f in figs.items()},
                }, step=step)
            for fig in figs.values():
                plt.close(fig)


def _png(fig) -> "object":
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    return Image.open(buf)
