"""Pure functions of predictions: classification metrics (`classification`), tag and entity metrics
(`tagging`), the same metrics as sums of per-example counts for fast resampling (`counts`), and the statistics
that keep noise from being read as a finding (`stats`)."""
