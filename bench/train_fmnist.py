"""Train the Fashion-MNIST small configs (seeded) and write their checkpoints + records.

    python bench/train_fmnist.py                 # every config without a checkpoint
    python bench/train_fmnist.py --force fmnist_levit
"""

from __future__ import annotations

import argparse
import sys

from edgekit.models.fmnist import SMALL_CONFIGS, train


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("names", nargs="*", help="configs (default: all)")
    ap.add_argument("--force", action="store_true", help="retrain even if a checkpoint exists")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    for name in args.names or SMALL_CONFIGS.list():
        cfg = SMALL_CONFIGS.get(name)
        if cfg.checkpoint.is_file() and not args.force:
            print(f"{name}: checkpoint exists ({cfg.checkpoint}); --force to retrain")
            continue
        train(cfg, seed=args.seed, threads=args.threads, log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
