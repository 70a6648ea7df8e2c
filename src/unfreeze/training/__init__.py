"""One run as a story (`run.train`): prepare (`prepare`) → cache the frozen prefix (`cache`) → train with the
optimizer groups and schedule (`optim`, `loss`) → evaluate with the one evaluation loop (`evaluate`) → write the
run folder (`run_dir`, `tokens` for tagged predictions, `memory` for peak-memory figures)."""
