"""The model card (`best/README.md`): what the saved model is (task, labels, base model, head, data, test
metrics) and how to load it — with unfreeze always, with plain transformers where a transformers class computes
the head. Hub metadata (front matter) follows the Hugging Face model-card fields: `library_name`, `tags`,
`pipeline_tag`, `base_model` (only for a hub model id, never a local path).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from unfreeze.assets import MODELS
from unfreeze.tasks import get_task

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def base_model_id(name: str) -> str | None:
    """The hub id behind a model name: a built-in alias's source model, an `org/name` id, or None (a folder)."""
    if name in MODELS:
        return MODELS[name].description.split()[0]
    return name if _HUB_ID.match(name) and not Path(name).exists() else None


def card_text(meta: dict, head: str, standard: bool) -> str:
    """The card as Markdown: front matter, facts, metrics, loading instructions."""
    task, labels = meta["task"], list(meta["labels"])
    pipeline = get_task(task).pipeline
    source = str(meta.get("source_model") or meta["model"].get("name", ""))
    hub_id = base_model_id(source)
    facts = meta.get("card") or {}
    front = ["---", "library_name: unfreeze", f"pipeline_tag: {pipeline}",
             "tags:", "- unfreeze", f"- {pipeline}"]
    if hub_id:
        front.append(f"base_model: {hub_id}")
    lines = [*front, "---", "", f"# A {task} classifier fine-tuned with unfreeze", "",
             f"- **Task**: {task} ({pipeline})",
             f"- **Labels** ({len(labels)}): {', '.join(f'`{x}`' for x in labels)}",
             f"- **Base model**: `{source}`" + (f" (hub: `{hub_id}`)" if hub_id and hub_id != source else ""),
             f"- **Head**: {head}; max_length {meta.get('max_length')}"]
    if facts.get("freeze"):
        lines.append(f"- **Freezing**: `{json.dumps(facts['freeze'])}`")
    if facts.get("data"):
        sizes = facts.get("sizes") or {}
        split = ", ".join(f"{k} {v}" for k, v in sizes.items())
        lines.append(f"- **Data**: `{facts['data']}`" + (f" ({split})" if split else ""))
    lines += _metrics(facts)
    lines += _how_to_load(task, standard)
    return "\n".join(lines) + "\n"


def _metrics(facts: dict) -> list[str]:
    test = facts.get("test") or {}
    if not test:
        return []
    out = ["", "## Test metrics", "",
           f"Best epoch {facts.get('best_epoch')} chosen by validation `{facts.get('selection_metric')}`; "
           "the test set was scored once, after training.", "", "| metric | value |", "|---|---|"]
    return out + [f"| {k} | {v:.4f} |" for k, v in test.items()]


def _how_to_load(task: str, standard: bool) -> list[str]:
    example = get_task(task).example_input
    lines = ["", "## How to load", "", "With unfreeze (every head):", "", "```python", "import unfreeze", "",
             'model = unfreeze.load("PATH")', f"model.predict({example})", "```", ""]
    if standard:
        lines += ["With transformers (this head is a transformers class):", "", "```python",
                  "from transformers import pipeline", "",
                  f'classifier = pipeline("{get_task(task).pipeline}", model="PATH")', "```"]
    else:
        lines += ["With transformers: no transformers class computes this head, so `AutoModelFor…"
                  "Classification.from_pretrained(PATH)` and `pipeline()` refuse the folder (its config.json "
                  "`model_type`) rather than load a randomly initialised classifier. The encoder alone loads as:",
                  "", "```python", "from transformers import AutoModel, AutoTokenizer", "",
                  'encoder = AutoModel.from_pretrained("PATH", subfolder="encoder")',
                  'tokenizer = AutoTokenizer.from_pretrained("PATH")', "```", "",
                  "(the head — pooling, dropout, linear layers — is `head.safetensors`, described in "
                  "`unfreeze.json`)."]
    return lines


def write_card(path: Path, meta: dict, head: str, standard: bool) -> None:
    path.write_text(card_text(meta, head, standard), encoding="utf-8")
