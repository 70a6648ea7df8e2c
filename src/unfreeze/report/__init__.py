"""unfreeze.report."""
