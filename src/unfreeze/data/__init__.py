"""unfreeze.data."""
