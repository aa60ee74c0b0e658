"""Image-classifier training speed: jaxllm's CNN and patch Transformer (ViT) against the same
models in PyTorch (eager), side by side in one process.

    python benchmarks/vision_throughput.py                      # digits-sized: 8x8x1, batch 64
    python benchmarks/vision_throughput.py --image-size 28 --patch-size 4 --batch 128
    python benchmarks/vision_throughput.py --repeats 3 --no-reference

Both sides build the shapes the image recipe trains (:mod:`jaxllm.recipes.image_classify`):
the CNN of two stages of two 3×3 convolutions (32, then 64 channels), each stage ending in a
2×2 max-pool, a hidden layer of 128 and dropout 0.25; the ViT of ``--patch-size`` patches,
4 pre-LN blocks of width 64 with 4 heads and an MLP of 128, a class token and learned
positions, dropout 0.1. PyTorch's models (:func:`torch_cnn`, :func:`torch_vit`) start from
jaxllm's weights, and the tests check they compute the same logits.

A training step is one AdamW update on ``--batch`` random images and labels with dropout on
(jaxllm's jitted train step; PyTorch's forward, backward and ``optimizer.step()``), in images
per second; "jaxllm + augment" adds the recipe's on-device random shifts and rotations, which
PyTorch's side does not do. Every figure is the median of ``--repeats`` timed calls of
``--steps`` steps each after an untimed first call; the first call of each side (jaxllm: trace
+ compile + run) is reported too. Timed calls of the two sides alternate, so a change in the
machine's load hits both alike. Target: >= 1.1x PyTorch. The last line printed is one JSON
object with every figure.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

from harness import call_stages, cpu_snapshot, print_report, run_record, timed_call
from jaxllm.data import AugmentConfig
from jaxllm.losses import image_classification_loss
from jaxllm.models.cnn import CNNConfig
from jaxllm.models.gpt import count_params
from jaxllm.models.image_classifiers import init_image_classifier
from jaxllm.models.vit import ViTConfig
from jaxllm.recipes.image_classify import image_model
from jaxllm.runtime import configure_cpu
from jaxllm.train import create_train_state, jit_train_step, make_train_step

SEED = 0
TARGET = 1.1
LEARNING_RATE = 1e-3


def model_configs(args: argparse.Namespace) -> dict[str, CNNConfig | ViTConfig]:
    shape = (args.image_size, args.image_size, 1)
    return {
        "cnn": CNNConfig(image_shape=shape, num_classes=10),
        "vit": ViTConfig(image_shape=shape, num_classes=10, patch_size=args.patch_size),
    }


def random_batch(args: argparse.Namespace) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    shape = (args.batch, args.image_size, args.image_size, 1)
    return {
        "images": rng.random(shape, dtype=np.float32),
        "labels": rng.integers(0, 10, args.batch).astype(np.int32),
    }


def jaxllm_runner(
    config: CNNConfig | ViTConfig, batch: dict, steps: int, augment: AugmentConfig | None
) -> tuple[Callable[[], Any], Any]:
    """``steps`` jitted AdamW steps of jaxllm's model, and its initial parameters."""
    model = image_model(config)
    params = init_image_classifier(model, jax.random.key(SEED))
    optimizer = optax.adamw(LEARNING_RATE)
    loss_fn = image_classification_loss(model, augment)
    step = jit_train_step(make_train_step(loss_fn, optimizer))
    state = [create_train_state(params, optimizer, jax.random.key(1))]
    device_batch = jax.tree.map(jax.numpy.asarray, batch)

    def train() -> Any:
        for _ in range(steps):
            state[0], metrics = step(state[0], device_batch)
        return metrics["loss"]

    return train, params


def _tensor(x: Any, *axes: int) -> Any:
    import torch  # pyright: ignore[reportMissingImports]

    x = np.asarray(x, np.float32)
    return torch.tensor(x.transpose(axes) if axes else x)


def _copy_dense(module: Any, params: dict) -> None:
    module.weight.data = _tensor(params["kernel"], 1, 0)
    module.bias.data = _tensor(params["bias"])


def torch_cnn(config: CNNConfig, params: dict) -> Any:
    """PyTorch's CNN of shape ``config`` holding jaxllm's ``params``; reads NHWC images
    (permuted to NCHW inside) and flattens channels-last, as jaxllm's does."""
    import torch  # pyright: ignore[reportMissingImports]

    layers: list[Any] = []
    channels = config.image_shape[2]
    for stage, width in enumerate(config.channels):
        for i in range(config.convs_per_stage):
            conv = torch.nn.Conv2d(channels, width, 3, padding=1)
            p = params[f"conv_{stage}_{i}"]
            conv.weight.data = _tensor(p["kernel"], 3, 2, 0, 1)  # (out, in, kh, kw)
            conv.bias.data = _tensor(p["bias"])  # pyright: ignore[reportOptionalMemberAccess]
            layers += [conv, torch.nn.ReLU()]
            channels = width
        layers.append(torch.nn.MaxPool2d(2))
    hidden = torch.nn.Linear(params["hidden"]["kernel"].shape[0], config.hidden)
    head = torch.nn.Linear(config.hidden, config.num_classes)
    _copy_dense(hidden, params["hidden"])
    _copy_dense(head, params["head"])
    features = torch.nn.Sequential(*layers)
    classifier = torch.nn.Sequential(
        hidden, torch.nn.ReLU(), torch.nn.Dropout(config.dropout), head
    )

    class CNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features, self.classifier = features, classifier

        def forward(self, images):  # (B, H, W, C)
            x = self.features(images.permute(0, 3, 1, 2))  # (B, C', H', W')
            return self.classifier(x.permute(0, 2, 3, 1).flatten(1))  # channels last, as flax

    return CNN()


def _copy_block(layer: Any, p: dict) -> None:
    """jaxllm's pre-LN block into ``torch.nn.TransformerEncoderLayer(norm_first=True)``."""
    attn = layer.self_attn
    attn.in_proj_weight.data = _tensor(p["attn"]["c_attn"]["kernel"], 1, 0)
    attn.in_proj_bias.data = _tensor(p["attn"]["c_attn"]["bias"])
    _copy_dense(attn.out_proj, p["attn"]["c_proj"])
    _copy_dense(layer.linear1, p["mlp"]["c_fc"])
    _copy_dense(layer.linear2, p["mlp"]["c_proj"])
    for norm, name in ((layer.norm1, "ln_1"), (layer.norm2, "ln_2")):
        norm.weight.data, norm.bias.data = _tensor(p[name]["scale"]), _tensor(p[name]["bias"])


def torch_vit(config: ViTConfig, params: dict) -> Any:
    """PyTorch's ViT of shape ``config`` (``TransformerEncoderLayer`` blocks, pre-LN, exact
    GELU) holding jaxllm's ``params``; reads NHWC images."""
    import torch  # pyright: ignore[reportMissingImports]

    width, p = config.n_embd, config.patch_size

    class ViT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embedding = torch.nn.Linear(p * p * config.image_shape[2], width)
            self.class_token = torch.nn.Parameter(_tensor(params["class_token"]))
            self.positions = torch.nn.Parameter(_tensor(params["positions"]))
            self.dropout = torch.nn.Dropout(config.dropout)
            self.blocks = torch.nn.ModuleList(
                torch.nn.TransformerEncoderLayer(
                    width,
                    config.n_head,
                    config.mlp_ratio * width,
                    config.dropout,
                    activation="gelu",
                    batch_first=True,
                    norm_first=True,
                )  # fmt: skip
                for _ in range(config.n_layer)
            )
            self.ln_f = torch.nn.LayerNorm(width)
            self.head = torch.nn.Linear(width, config.num_classes)

        def forward(self, images):  # (B, H, W, C)
            b, h, w, c = images.shape
            x = images.reshape(b, h // p, p, w // p, p, c).permute(0, 1, 3, 2, 4, 5)
            x = self.patch_embedding(x.reshape(b, (h // p) * (w // p), p * p * c))  # (B, N, D)
            x = torch.cat([self.class_token.expand(b, 1, width), x], 1) + self.positions
            x = self.dropout(x)
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln_f(x[:, 0]))

    model = ViT()
    _copy_dense(model.patch_embedding, params["patch_embedding"])
    for i, block in enumerate(model.blocks):
        _copy_block(block, params[f"block_{i}"])
    model.ln_f.weight.data = _tensor(params["ln_f"]["scale"])
    model.ln_f.bias.data = _tensor(params["ln_f"]["bias"])
    _copy_dense(model.head, params["head"])
    return model


def torch_runner(kind: str, config: Any, params: Any, batch: dict, steps: int) -> Callable:
    """``steps`` eager AdamW steps of PyTorch's model (default torch threads)."""
    import torch  # pyright: ignore[reportMissingImports]

    torch.manual_seed(SEED)
    model = (torch_cnn if kind == "cnn" else torch_vit)(config, params)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    images = torch.from_numpy(batch["images"])
    labels = torch.from_numpy(batch["labels"]).long()

    def train() -> Any:
        for _ in range(steps):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
        return loss.item()

    return train


def measure_model(kind: str, config: Any, args: argparse.Namespace, batch: dict) -> dict:
    """One table row: images per second of each side, first calls, the ratio."""
    ours, params = jaxllm_runner(config, batch, args.steps, None)
    augmented, _ = jaxllm_runner(config, batch, args.steps, AugmentConfig())
    sides = {"jaxllm": ours, "jaxllm_augment": augmented}
    if args.reference:
        sides["torch"] = torch_runner(kind, config, jax.device_get(params), batch, args.steps)
    row: dict[str, Any] = {"model": kind, "parameters": count_params(params)}
    stages, _ = call_stages(ours)
    row |= {f"jaxllm_first_{k}": v for k, v in stages.items()}
    for name, run in sides.items():
        if name != "jaxllm":
            row[f"{name}_first_s"] = timed_call(run)[0]
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.repeats):
        for name, run in sides.items():
            seconds[name].append(timed_call(run)[0])
    for name, times in seconds.items():
        row[f"{name}_per_s"] = args.batch * args.steps / float(np.median(times))
    if args.reference:
        row["ratio"] = row["jaxllm_per_s"] / row["torch_per_s"]
        row["target"] = TARGET
    return row


def report_lines(result: dict[str, Any]) -> list[str]:
    a = result["args"]
    lines = [
        f"Training steps (AdamW, dropout on) on {a['batch']} images of {a['image_size']}x"
        f"{a['image_size']}x1; ViT patches {a['patch_size']}x{a['patch_size']}; images/s, "
        f"median of {a['repeats']} calls of {a['steps']} steps",
        "",
        "| model | parameters | jaxllm | first call (trace/compile/run) | jaxllm + augment "
        "| PyTorch | PyTorch first | ratio | target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        first = (f"{r['jaxllm_first_total_s']:.2f} s ({r['jaxllm_first_trace_s']:.2f}/"
                 f"{r['jaxllm_first_compile_s']:.2f}/{r['jaxllm_first_run_s']:.2f})")  # fmt: skip
        theirs = (f"{r['torch_per_s']:,.0f} | {r['torch_first_s']:.2f} s | **{r['ratio']:.2f}x** "
                  f"| >= {r['target']}x") if "ratio" in r else "- | - | - | -"  # fmt: skip
        lines.append(
            f"| {r['model']} | {r['parameters']:,} | {r['jaxllm_per_s']:,.0f} | {first} | "
            f"{r['jaxllm_augment_per_s']:,.0f} | {theirs} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    configure_cpu()  # jaxllm's XLA:CPU process settings, before any JAX work
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=8)
    parser.add_argument("--patch-size", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["cnn", "vit"], choices=["cnn", "vit"])
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args(argv)
    start = cpu_snapshot()
    batch = random_batch(args)
    configs = model_configs(args)
    rows = [measure_model(kind, configs[kind], args, batch) for kind in args.models]
    result = {"benchmark": "vision_throughput", "args": vars(args), "rows": rows,
              **run_record(start)}  # fmt: skip
    result["ratios"] = {r["model"]: r["ratio"] for r in rows if "ratio" in r}
    print_report(report_lines(result), result, json_only=args.json_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
