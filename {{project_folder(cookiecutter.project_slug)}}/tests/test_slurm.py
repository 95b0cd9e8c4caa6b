"""Slurm: the batch scripts' settings, and a requeued job finding its own run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.names import MANIFEST
from {{ cookiecutter.package_name }}.run import new_run_dir, slurm_job

SLURM = Path(__file__).resolve().parents[1] / "slurm"
SCRIPTS = sorted(SLURM.glob("*.sbatch"))


def directives(script: Path) -> dict[str, str]:
    """The ``#SBATCH --key=value`` lines of a batch script."""
    found = re.findall(r"^#SBATCH --([\w-]+)(?:=(\S+))?", script.read_text(), re.M)
    return dict(found)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_batch_scripts_requeue_on_a_signal_and_log_into_runs(script: Path) -> None:
    settings = directives(script)
    assert re.fullmatch(r"USR1@\d+", settings["signal"])
    assert "requeue" in settings
    assert settings["output"].startswith("runs/slurm-")
    assert settings["open-mode"] == "append"
    assert "ntasks-per-node" in settings
    assert "ntasks" not in settings
    bash = shutil.which("bash")
    if bash is not None:
        subprocess.run([bash, "-n", str(script)], check=True)


def test_fit_script_gives_lightning_the_job_shape() -> None:
    text = (SLURM / "fit.sbatch").read_text()
    assert '--trainer.devices "${SLURM_NTASKS_PER_NODE}"' in text
    assert '--trainer.num_nodes "${SLURM_JOB_NUM_NODES}"' in text
    # After the user's options: the shape always matches the tasks Slurm started.
    assert text.rindex('"$@"') < text.rindex("--trainer.devices")


def in_job(monkeypatch: pytest.MonkeyPatch, job_id: str, restarts: int) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", job_id)
    monkeypatch.setenv("SLURM_JOB_NAME", "my-job")
    monkeypatch.setenv("SLURM_RESTART_COUNT", str(restarts))
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)


def write_run(folder: Path, status: str) -> Path:
    folder.mkdir(parents=True)
    manifest = {"status": status, "slurm": slurm_job()}
    (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_a_requeued_job_continues_its_unfinished_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    in_job(monkeypatch, "77", 0)
    first = write_run(new_run_dir(tmp_path, "fit", "big"), "running")
    assert new_run_dir(tmp_path, "fit", "big") != first  # not requeued: a new run
    in_job(monkeypatch, "77", 1)
    assert new_run_dir(tmp_path, "fit", "big") == first
    assert new_run_dir(tmp_path, "fit") != first  # another name: another run
    assert new_run_dir(tmp_path, "test", "big").parent == tmp_path
    assert not new_run_dir(tmp_path, "test", "big").exists()
    in_job(monkeypatch, "78", 1)  # another job
    assert new_run_dir(tmp_path, "fit", "big") != first


def test_a_requeued_job_starts_afresh_after_its_run_completed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    in_job(monkeypatch, "90", 0)
    done = write_run(new_run_dir(tmp_path, "fit"), "complete")
    in_job(monkeypatch, "90", 1)
    assert new_run_dir(tmp_path, "fit") != done


def test_an_interactive_allocation_is_not_a_job_to_resume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_job(monkeypatch, "5", 1)
    monkeypatch.setenv("SLURM_JOB_NAME", "interactive")
    assert slurm_job() is None
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setenv("SLURM_JOB_NAME", "x")
    assert slurm_job() is None
