"""One training run: its config, the LightningModule, the run folder's bookkeeping, resuming, subnormal flushing."""
