"""Your-data benchmark: a large table and a folder of PNGs through the baked DataModules.

    .venv/bin/python bench/your_data.py                 # 200,000 x 30 table, 5,000 PNGs
    .venv/bin/python bench/your_data.py --rows 20000 --images 500

Bakes the default project (``init_git=no``) into a temporary folder, imports
its package from ``src/`` with this Python (the template's test environment
has the baked runtime), generates the data there and measures, each in a
fresh process so that peak memory is its own:

- ``read_csv``: ``pandas.read_csv`` of the table alone; ``TableDataModule``:
  its ``setup("fit")`` (read, column kinds, split, per-column statistics and
  category vocabularies, the float32 values); seconds, and the peak resident
  memory above what the process held before (``VmHWM`` less ``VmRSS``),
  against the float32 feature matrix (rows x feature columns x 4 bytes);
- one training epoch of the default ``MLP`` behind the project's
  ``Classifier`` (its preprocessing included): under Lightning's ``Trainer``
  (no logger, checkpoints, progress bar or validation; the system's own
  training step, with its running metrics) on the DataModule's loader, and as
  a plain PyTorch loop (the same module's forward, its Adam, batch size, a
  shuffled ``DataLoader`` over the same tensors); the second epoch of each;
- PNGs: a bare Pillow loop (open, convert to RGB, resize to the DataModule's
  ``image_size``, to an array) over the training split's files, against
  ``ImageFolderDataModule``'s training loader with ``num_workers=2`` alone
  (its second full pass, workers kept), and one training epoch of the
  default ``CNN`` on it (where the network's arithmetic shares the two cores
  with the workers); images per second.

It prints a Markdown table and writes the JSON beside it (``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = 5
CLASSES = ("low", "mid", "high")


def rss_kib(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` of this process, in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def make_table(path: Path, rows: int, columns: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    data: dict[str, Any] = {}
    numeric = columns - CATEGORIES
    for number in range(numeric):
        data[f"x{number}"] = rng.normal(0, 10.0 ** (number % 4), rows).astype(np.float32)
    for number in range(CATEGORIES):
        data[f"c{number}"] = rng.choice([f"k{k}" for k in range(8)], rows)
    score = data["x0"] / 1.0 + data["x1"] / 10.0 + (data["c0"] == "k1")
    data["target"] = np.where(score > 1, CLASSES[2], np.where(score > -1, CLASSES[1], CLASSES[0]))
    pd.DataFrame(data).to_csv(path, index=False)


def make_images(root: Path, count: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for number in range(count):
        kind = ("dark", "light")[number % 2]
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        base = 60 if kind == "dark" else 190
        pixels = np.clip(rng.normal(base, 40, (64, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, mode="RGB").save(folder / f"{number:05d}.png")


def measure(name: str, work: Path, package: str) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    import importlib

    table, images = work / "table.csv", work / "images"
    if name == "read_csv":
        import pandas as pd

        before = rss_kib("VmRSS")
        started = time.perf_counter()
        frame = pd.read_csv(table)
        seconds = time.perf_counter() - started
        return {"s": seconds, "peak_mib": (rss_kib("VmHWM") - before) / 1024, "shape": frame.shape}
    tables = importlib.import_module(f"{package}.tables")
    if name == "table_setup":
        before = rss_kib("VmRSS")
        started = time.perf_counter()
        data = tables.TableDataModule(str(table), "target")
        data.setup("fit")
        seconds = time.perf_counter() - started
        features = data.values.shape[1]
        return {
            "s": seconds,
            "peak_mib": (rss_kib("VmHWM") - before) / 1024,
            "matrix_mib": data.values.shape[0] * features * 4 / 2**20,
            "features": features,
        }
    if name in ("table_epoch", "image_epoch"):
        return epochs(name, work, package)
    if name == "png_bare":
        from PIL import Image

        images_module = importlib.import_module(f"{package}.images")
        data = images_module.ImageFolderDataModule(str(images), num_workers=0)
        data.setup("fit")
        import numpy as np

        files = data.datasets["train"].paths
        height, width = data.size
        started = time.perf_counter()
        for path in files:
            with Image.open(path) as image:
                np.asarray(image.convert("RGB").resize((width, height)))
        seconds = time.perf_counter() - started
        return {"images": len(files), "s": seconds, "per_s": len(files) / seconds}
    raise SystemExit(f"unknown measurement {name}")


def epochs(name: str, work: Path, package: str) -> dict[str, Any]:
    """The second epoch's seconds: Lightning's Trainer, then a plain loop (tables only)."""
    import importlib
    import json as json_

    import lightning.pytorch as pl
    import torch

    model = importlib.import_module(f"{package}.model")
    system = importlib.import_module(f"{package}.system")
    if name == "table_epoch":
        data = importlib.import_module(f"{package}.tables").TableDataModule(
            str(work / "table.csv"), "target"
        )
    else:
        data = importlib.import_module(f"{package}.images").ImageFolderDataModule(
            str(work / "images"), num_workers=2
        )
    data.setup("fit")
    loader_s = None
    if name == "image_epoch":  # the loader alone: decoding in 2 workers, no model
        loader = data.train_dataloader()
        for _ in range(2):
            started = time.perf_counter()
            for _batch in loader:
                pass
            loader_s = time.perf_counter() - started
    net_class = model.MLP if name == "table_epoch" else model.CNN
    pl.seed_everything(0, verbose=False)

    def build() -> Any:
        net = net_class(data.net_input_shape, data.num_classes)
        spec = json_.dumps(data.input_spec)
        return system.Classifier(net, data.num_classes, preprocessing=spec)

    times: list[float] = []

    class EpochTimer(pl.Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            self.started = time.perf_counter()

        def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            times.append(time.perf_counter() - self.started)

    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[EpochTimer()],
    )
    trainer.fit(build(), datamodule=data)
    samples = len(data.datasets["train"])
    result: dict[str, Any] = {"samples": samples, "lightning_s": times[-1]}
    result["lightning_per_s"] = samples / times[-1]
    if loader_s is not None:
        result["loader_per_s"] = samples / loader_s
    if name == "table_epoch":
        module = build()
        optimizer = module.configure_optimizers()
        dataset = data.datasets["train"]  # the same tensors the Trainer's loader served
        loader = torch.utils.data.DataLoader(dataset, batch_size=data.batch_size, shuffle=True)
        plain: list[float] = []
        for _ in range(2):
            started = time.perf_counter()
            module.train()
            for inputs, labels in loader:
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(module(inputs), labels)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            plain.append(time.perf_counter() - started)
        result["plain_s"] = plain[-1]
    return result


def run_measure(name: str, work: Path, package: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--measure", name, "--work", str(work)]
    command += ["--package", package]
    env = {**os.environ, "PYTHONPATH": str(work / "project" / "src")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--columns", type=int, default=30)
    parser.add_argument("--images", type=int, default=5_000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--package", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.measure:
        print(json.dumps(measure(options.measure, options.work, options.package), default=str))
        return 0
    from cookiecutter.main import cookiecutter  # type: ignore[import-untyped]

    with tempfile.TemporaryDirectory(prefix="bench-your-data-") as folder:
        work = Path(folder)
        baked = cookiecutter(
            str(ROOT),
            no_input=True,
            output_dir=str(work / "out"),
            extra_context={"init_git": "no"},
        )
        os.rename(baked, work / "project")
        package = "my_ml_project"
        started = time.perf_counter()
        make_table(work / "table.csv", options.rows, options.columns)
        make_images(work / "images", options.images)
        print(f"data made in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        results = {
            name: run_measure(name, work, package)
            for name in ("read_csv", "table_setup", "table_epoch", "png_bare", "image_epoch")
        }
    results["settings"] = vars(options) | {"json": str(options.json)}
    read, setup, epoch = results["read_csv"], results["table_setup"], results["table_epoch"]
    bare, image = results["png_bare"], results["image_epoch"]
    rows = [
        ("`pandas.read_csv` alone", f"{read['s']:.2f} s, peak +{read['peak_mib']:.0f} MiB"),
        (
            "`TableDataModule.setup('fit')`",
            f"{setup['s']:.2f} s ({setup['s'] / read['s']:.2f}x read_csv),"
            f" peak +{setup['peak_mib']:.0f} MiB"
            f" ({setup['peak_mib'] / setup['matrix_mib']:.2f}x the float32 matrix,"
            f" {setup['matrix_mib']:.0f} MiB)",
        ),
        (
            f"table: one training epoch ({epoch['samples']} rows)",
            f"Trainer {epoch['lightning_s']:.2f} s, plain loop {epoch['plain_s']:.2f} s"
            f" ({epoch['lightning_s'] / epoch['plain_s']:.2f}x)",
        ),
        (f"PNGs: bare Pillow loop ({bare['images']} files)", f"{bare['per_s']:.0f} images/s"),
        (
            "PNGs: the training loader alone, `num_workers=2` (second pass)",
            f"{image['loader_per_s']:.0f} images/s"
            f" ({image['loader_per_s'] / bare['per_s']:.2f}x the bare loop)",
        ),
        (
            "PNGs: one training epoch of the CNN, `num_workers=2`",
            f"{image['lightning_per_s']:.0f} images/s"
            f" ({image['lightning_per_s'] / bare['per_s']:.2f}x the bare loop)",
        ),
    ]
    print("| measure | value |\n| --- | --- |")
    for label, value in rows:
        print(f"| {label} | {value} |")
    if options.json:
        options.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
