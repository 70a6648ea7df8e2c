"""Cost of checking the activation cache on open (issue #26): fill the demo study's cache (examples/demo.yaml:
head, top-2, top-4 boundaries on MiniLM + Rotten Tomatoes; fp16 train, fp32 val/test) into CACHE_DIR unless it is
there, then time `verify` over every shard with checksums (what each process does on a shard's first open) and
without (lengths + headers: later opens), best of 3, files in the page cache.

    PYTHONPATH=src python benchmarks/bench_cache_verify.py /tmp/demo-cache
"""
import sys
import time
from pathlib import Path

import yaml


def fill(root: Path) -> None:
    from unfreeze.config.schema import RunConfig
    from unfreeze.training.accelerator import make_accelerator
    from unfreeze.training.cache import build_caches
    from unfreeze.training.cache_part import CacheInputs
    from unfreeze.training.prepare import prepare_parts

    base = yaml.safe_load((Path(__file__).parents[1] / "examples" / "demo.yaml").read_text())["base"]
    cfg = RunConfig.model_validate({**base, "freeze": "head"})
    data, model = prepare_parts(cfg)
    inputs = CacheInputs(cfg, model.plan, model.model, model.tokenizer, data.encoded, data.data, data.max_length)
    started = time.perf_counter()
    build_caches(inputs, make_accelerator(cfg), root, False, {0, 2, 4})
    print(f"fill: {time.perf_counter() - started:.1f} s")


def main(root: Path) -> None:
    from unfreeze.io.integrity import verify

    if not root.exists():
        fill(root)
    shards = sorted(root.glob("*/shard-*"))
    size = sum(p.stat().st_size for s in shards for p in s.iterdir())
    for store in sorted(root.iterdir()):
        mib = sum(p.stat().st_size for p in store.rglob("*") if p.is_file()) / 2**20
        print(f"{store.name}: {mib:.1f} MiB, arrays {sorted({p.name for p in store.rglob('*.npy')})}")
    for checksums in (True, False):
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for shard in shards:
                assert verify(shard, checksums=checksums) == []
            best = min(best, time.perf_counter() - started)
        print(f"checksums={checksums}: {best:.3f} s for {size / 2**20:.1f} MiB -> {best / (size / 2**30):.2f} s/GiB")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
