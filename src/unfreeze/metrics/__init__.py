"""unfreeze.metrics."""
