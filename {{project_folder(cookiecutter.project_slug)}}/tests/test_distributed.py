"""Scale-out: DDP on CPU processes, and training on a GPU when there is one."""

from __future__ import annotations

import json
import os
import signal
import socket
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
DDP_TIMEOUT_S = 180
"""Two processes of a smoke run take well under a minute; a hang ends here."""


def loopback() -> str | None:
    """The loopback interface's name if 127.0.0.1 takes connections, else None.

    With no network at all (a container or namespace without loopback) the
    two processes could not meet, and would wait for each other until killed.
    """
    try:
        with socket.create_server(("127.0.0.1", 0)) as server:
            socket.create_connection(server.getsockname(), timeout=5).close()
    except OSError:
        return None
    names = [name for _, name in socket.if_nameindex() if name.startswith("lo")]
    return names[0] if names else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for the rendezvous)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port: int = server.getsockname()[1]
        return port


def run_to_completion(
    command: list[str], cwd: Path, env: dict[str, str], timeout: float
) -> tuple[int, str]:
    """Run ``command`` in its own session; on a timeout kill it with its children.

    Returns the exit status and the output (stdout and stderr together).
    """
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # Lightning's rank 1 is a child: same group
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if sys.platform != "win32":
            os.killpg(process.pid, signal.SIGKILL)
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"no result after {timeout:.0f} s (killed):\n{output[-4000:]}")
    return process.returncode, output


@pytest.mark.slow
@pytest.mark.skipif(
    sys.platform == "win32", reason="torch.distributed's CPU backend is Linux/macOS"
)
@pytest.mark.usefixtures("datamodule")  # its skips (no data) apply here too
def test_ddp_on_two_cpu_processes(tmp_path: Path, configs: Path) -> None:
    interface = loopback()
    if interface is None:
        pytest.skip("the loopback interface is down: two processes cannot meet")
    # Lightning starts the second process by re-running the command line, so
    # this needs a real process rather than main() called in-process.
    path = [str(SOURCE), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path),
        # The processes meet on loopback only: no other interface is needed.
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "GLOO_SOCKET_IFNAME": interface,
    }
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
    returncode, output = run_to_completion(command, tmp_path, env, DDP_TIMEOUT_S)
    assert returncode == 0, output[-4000:]

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
