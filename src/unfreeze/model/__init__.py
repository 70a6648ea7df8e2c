"""unfreeze.model."""
