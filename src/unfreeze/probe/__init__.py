"""unfreeze.probe."""
