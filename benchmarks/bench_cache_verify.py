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
    from unfreeze.training.cache_part import fill_cache
    from unfreeze.training.callbacks import RunCallbacks
    from unfreeze.training.prepare import prepare_parts

    base = yaml.safe_load((Path(__file__).parents[1] / "examples" / "demo.yaml").read_text())["base"]
    cfg = RunConfig.model_validate({**base, "freeze": "head"})
    run_data, run_model = prepare_parts(cfg)
    started = time.perf_counter()
    fill_cache(cfg, run_data, run_model, make_accelerator(cfg), RunCallbacks(cache_root=root, cache_top_ks={0, 2, 4}),
               False)
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
