"""Stage models: plain ``nn.Module``s with ``loss(batch: TokenBatch) -> LMOutput``."""
