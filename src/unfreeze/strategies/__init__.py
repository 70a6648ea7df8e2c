"""unfreeze.strategies."""
