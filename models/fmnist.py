"""Small configs of the families, trained on Fashion-MNIST: the models that make accuracy claims.

No pretrained ImageNet weights can be had offline, and random weights have no real outliers, so
int8/int-only accuracy is measured on these: timm constructors with reduced depth/width, trained
here by `train()` (seeded, minutes on 2 CPU cores) and shipped as .safetensors next to this file.

    edgekit export fmnist_levit --to onnx --quant int8 --calib fmnist
    edgekit accuracy artifacts/fmnist_levit.int8.onnx --data fmnist
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.registry import Registry

CHECKPOINT_DIR = Path(__file__).resolve().parent / "fmnist"
# Fashion-MNIST pixel statistics (train split), replicated over the 3 input channels.
MEAN, STD = 0.2860, 0.3530


@dataclass(frozen=True)
class SmallConfig:
    name: str  # model spec users pass: fmnist_<family>
    family: str
    image_size: int
    build: Callable[[], Any]
    epochs: int
    lr: float = 2e-3

    @property
    def data_config(self) -> dict[str, Any]:
        return {"input_size": [3, self.image_size, self.image_size], "mean": [MEAN] * 3,
                "std": [STD] * 3, "interpolation": "bilinear", "crop_pct": 1.0,
                "crop_mode": "center", "dataset": "fmnist"}

    @property
    def checkpoint(self) -> Path:
        return CHECKPOINT_DIR / f"{self.name}.safetensors"


def _efficientformer() -> Any:
    from timm.models.efficientformer import EfficientFormer

    # 56 px -> 14×14 after the stem, 7×7 from stage 2: timm's attention-bias grid is fixed at 7×7.
    return EfficientFormer(depths=(1, 1, 2, 2), embed_dims=(32, 64, 64, 64), num_vit=1,
                           downsamples=(False, True, False, False), num_classes=10)


def _levit() -> Any:
    from timm.models.levit import Levit

    return Levit(img_size=64, num_classes=10, embed_dim=(64, 96, 128), key_dim=16,
                 depth=(1, 1, 1), num_heads=(2, 3, 4))


def _efficientformerv2() -> Any:
    from timm.models.efficientformer_v2 import EfficientFormerV2

    return EfficientFormerV2(depths=(1, 1, 1, 2), embed_dims=(16, 32, 64, 96), num_vit=1,
                             img_size=32, num_classes=10, distillation=False)


def _fastvit() -> Any:
    from timm.models.fastvit import FastVit

    return FastVit(layers=(1, 1, 1, 1), embed_dims=(16, 32, 64, 128),
                   token_mixers=("repmixer", "repmixer", "repmixer", "attention"),
                   mlp_ratios=(3, 3, 3, 3), num_classes=10)


def _mobilevit() -> Any:
    from timm.models.byobnet import ByobNet, ByoModelCfg
    from timm.models.mobilevit import _inverted_residual_block, _mobilevit_block

    cfg = ByoModelCfg(
        blocks=(
            _inverted_residual_block(d=1, c=16, s=2, br=2.0),
            _mobilevit_block(d=1, c=32, s=2, transformer_dim=48, transformer_depth=1,
                             patch_size=2, br=2.0),
            _mobilevit_block(d=1, c=48, s=2, transformer_dim=64, transformer_depth=2,
                             patch_size=2, br=2.0),
        ),
        stem_chs=16, stem_type="3x3", stem_pool="", downsample="", act_layer="silu",
        num_features=128)
    return ByobNet(cfg=cfg, num_classes=10)


SMALL_CONFIGS: Registry[SmallConfig] = Registry("Fashion-MNIST config")
for _cfg in (
    SmallConfig("fmnist_efficientformer", "efficientformer", 56, _efficientformer, epochs=7),
    SmallConfig("fmnist_levit", "levit", 64, _levit, epochs=5),
    SmallConfig("fmnist_mobilevit", "mobilevit", 64, _mobilevit, epochs=4),
    SmallConfig("fmnist_efficientformerv2", "efficientformerv2", 32, _efficientformerv2,
                epochs=4),
    SmallConfig("fmnist_fastvit", "fastvit", 64, _fastvit, epochs=4),
):
    SMALL_CONFIGS.register(_cfg.name, _cfg)


def is_small_config(spec: str) -> bool:
    return spec in SMALL_CONFIGS


def build(cfg: SmallConfig, seed: int = 0) -> Any:
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cfg.build()


def evaluate_torch(model: Any, cfg: SmallConfig, split: str = "test", batch: int = 500,
                   limit: int | None = None) -> float:
    """Top-1 (fraction) of a torch model on a Fashion-MNIST split."""
    import numpy as np
    import torch

    from edgekit import fashion_mnist as fm

    images, labels = fm.load(split)
    if limit:
        images, labels = images[:limit], labels[:limit]
    correct = 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = fm.to_model_input(images[i:i + batch], cfg.image_size, (MEAN,) * 3, (STD,) * 3)
            logits = model(torch.from_numpy(x))
            correct += int((logits.argmax(1).numpy() == labels[i:i + batch]).sum())
    return correct / len(np.asarray(labels))


def train(cfg: SmallConfig, seed: int = 0, threads: int = 2, batch: int = 128,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Seeded training run: AdamW + one-cycle, label smoothing, random shifts and flips.

    Writes the checkpoint and `<name>.json` (accuracy, seed, epochs, seconds) and returns it.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F  # noqa: N812
    from safetensors.torch import save_file

    from edgekit import fashion_mnist as fm

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images, labels = fm.load("train")
    x_all = torch.from_numpy(fm.to_model_input(images, cfg.image_size, (MEAN,) * 3, (STD,) * 3))
    y_all = torch.from_numpy(labels.astype(np.int64))
    model = build(cfg, seed)
    steps_per_epoch = len(x_all) // batch
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, pct_start=0.15,
                                                total_steps=cfg.epochs * steps_per_epoch)
    pad = cfg.image_size // 16
    started = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(x_all)))
        total = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * batch:(step + 1) * batch]
            x = x_all[idx]
            # augmentation: random shift (reflect-padded crop) and horizontal flip
            dy, dx = (int(v) for v in rng.integers(0, 2 * pad + 1, size=2))
            x = F.pad(x, (pad, pad, pad, pad), mode="reflect")[
                :, :, dy:dy + cfg.image_size, dx:dx + cfg.image_size]
            if rng.random() < 0.5:
                x = x.flip(3)
            loss = F.cross_entropy(model(x), y_all[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        log(f"{cfg.name}: epoch {epoch + 1}/{cfg.epochs} loss {total / steps_per_epoch:.4f} "
            f"({time.perf_counter() - started:.0f} s)")
    seconds = time.perf_counter() - started
    model.eval()
    acc = evaluate_torch(model, cfg)
    CHECKPOINT_DIR.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(cfg.checkpoint))
    record = {"model": cfg.name, "family": cfg.family, "image_size": cfg.image_size,
              "seed": seed, "epochs": cfg.epochs, "batch": batch, "lr": cfg.lr,
              "threads": threads, "train_seconds": round(seconds, 1),
              "params": sum(p.numel() for p in model.parameters()),
              "fp32_top1_torch": round(acc * 100, 2)}
    cfg.checkpoint.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"{cfg.name}: test top-1 {acc * 100:.2f} % in {seconds:.0f} s")
    return record


def training_record(cfg: SmallConfig) -> dict[str, Any] | None:
    path = cfg.checkpoint.with_suffix(".json")
    return json.loads(path.read_text()) if path.is_file() else None
