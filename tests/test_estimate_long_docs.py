"""#27's done-when set, built by `bench_estimate.py --long-docs DIR --long-docs-size 500x6x4000x7
--long-docs-words 300-700`: 3,000 training and 4,000 test documents of 300-700 words from the built-in BBC News."""
import pandas as pd
import pytest

import bench_estimate


@pytest.mark.assets
def test_the_done_when_long_document_set_has_3000_training_and_4000_test_documents_of_300_to_700_words(tmp_path):
    folder = tmp_path / "long"
    bench_estimate.main(["--long-docs", str(folder), "--long-docs-size", "500x6x4000x7", "--long-docs-words",
                         "300-700", "--json", str(tmp_path / "e.json"), "--md", str(tmp_path / "B.md")])
    train, test = pd.read_csv(folder / "train.csv"), pd.read_csv(folder / "test.csv")
    assert len(train) == 3000 and len(test) == 4000
    for frame in (train, test):
        words = frame["text"].str.split().str.len()
        assert words.min() >= 300 and words.max() <= 700
    # rotations of one article stay in one split: no training article's words reach the test file
    bag = lambda text: tuple(sorted(text.split()))  # noqa: E731
    assert not {bag(t) for t in train["text"]} & {bag(t) for t in test["text"]}
    assert not (tmp_path / "B.md").exists()  # built only: without --work no study runs
