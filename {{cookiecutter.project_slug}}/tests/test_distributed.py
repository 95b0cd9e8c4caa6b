"""Scale-out: DDP on CPU processes, and training on a GPU when there is one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import {{ cookiecutter.package_name }}

# The folder holding the package, so a fresh interpreter imports this copy.
SOURCE = Path({{ cookiecutter.package_name }}.__file__).resolve().parents[1]
RunCLI = Callable[..., Path]

requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"
)


@pytest.mark.slow
@pytest.mark.skipif(
    sys.platform == "win32", reason="torch.distributed's CPU backend is Linux/macOS"
)
def test_ddp_on_two_cpu_processes(tmp_path: Path, configs: Path) -> None:
    # Lightning starts the second process by re-running the command line, so
    # this needs a real process rather than main() called in-process.
    path = [str(SOURCE), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    command = [
        sys.executable,
        "-m",
        "{{ cookiecutter.package_name }}",
        "fit",
        "--config",
        str(configs / "smoke.yaml"),
        "--trainer.accelerator=cpu",
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.enable_progress_bar=false",
{%- if cookiecutter.dataset == "mnist" %}
        f"--data.data_dir={SOURCE.parent / 'data'}",
{%- endif %}
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,  # the assertion below shows the output
    )
    assert result.returncode == 0, result.stderr[-4000:]

    (run,) = (tmp_path / "runs").iterdir()  # one folder, written by rank zero
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["trainer"]["world_size"] == 2
    assert manifest["trainer"]["strategy"] == "DDPStrategy"
    assert (run / "metrics.csv").read_text(encoding="utf-8").count("\n") == 3
    assert (run / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.gpu
@requires_cuda
def test_fit_on_a_gpu(run_cli: RunCLI, configs: Path) -> None:
    run = run_cli(
        "fit", "--config", str(configs / "smoke.yaml"), "--trainer.accelerator=gpu"
    )
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["trainer"]["accelerator"] == "CUDAAccelerator"
    assert manifest["cuda"]


@pytest.mark.gpu
@requires_cuda
def test_gpu_runs_are_reproducible(run_cli: RunCLI, configs: Path) -> None:
    on_gpu = ["--config", str(configs / "smoke.yaml"), "--trainer.accelerator=gpu"]
    first, second = run_cli("fit", *on_gpu), run_cli("fit", *on_gpu)
    assert (first / "metrics.csv").read_bytes() == (second / "metrics.csv").read_bytes()
