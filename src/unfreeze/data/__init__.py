"""Data in, encoded splits out: built-in data sets and files (CSV/TSV/JSONL/Parquet/CoNLL/on-disk) read and
cleaned (`sequence`, `tokens`, `token_files`), split and de-duplicated, tokenised and batched (`encode`), long
tagged sentences windowed (`windows`), near-duplicates across splits (`near_duplicates`), and `inspect` for a
look before training."""
