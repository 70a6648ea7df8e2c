"""unfreeze.config."""
