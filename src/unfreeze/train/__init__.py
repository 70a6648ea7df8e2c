"""unfreeze.train."""
