"""The baked ``slurm/*.sbatch`` scripts, run as shipped on a real one-node Slurm cluster.

The cluster (see :mod:`.slurm_cluster`) is Debian's ``slurm-wlm`` and
``munge``, started by the test on 127.0.0.1 and stopped with every process
it started; the test skips, saying why, where it cannot be had (``.ci/run``
installs the packages). The jobs run the installed ``logger=mlflow`` bake
(:mod:`.scale_workspace`) with its own venv's Python, on CPUs: the scripts'
GPU request is turned off on the ``sbatch`` command line, as the scripts'
comments say for a CPU-only cluster.

- ``fit.sbatch`` with 2 tasks: DDP on gloo, one run folder written by both
  ranks, the same metrics as the same config's 2-process DDP run without
  Slurm.
- Preemption: ``scancel --signal=USR1`` during training makes Lightning save
  its HPC checkpoint and requeue the job; the requeued job (released at once
  with ``scontrol update``) completes the same run folder from that
  checkpoint, the epochs continuing, and the manifest records both sessions.
- ``tune.sbatch`` as an array of 2 tasks: one study with exactly the trials
  asked for, run by two workers.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import slurm_cluster
from .conftest import Report
from .local_index import LocalIndex
from .scale_workspace import Installed, installed
from .steps import run_tracked

pytestmark = pytest.mark.e2e

QUIET = ("--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false")
CPU_ONLY = ("--gpus-per-node=0", "--cpus-per-task=1")


@pytest.fixture(scope="module")
def cluster(e2e_report: Report) -> Iterator[slurm_cluster.Cluster]:
    reason = slurm_cluster.unavailable()
    if reason:
        pytest.skip(reason)
    began = time.monotonic()
    started = slurm_cluster.start()
    e2e_report.record("slurm", cluster_start_s=round(time.monotonic() - began, 1))
    try:
        yield started
    finally:
        left = started.stop()
    assert not left, f"processes left running after the cluster stopped (now killed): {left}"


@pytest.fixture(scope="module")
def project(
    bake: Any,
    e2e_dir: Path,
    pytorch_index: LocalIndex,
    mirror_url: str,
    poetry_env: dict[str, str],
    e2e_report: Report,
) -> Installed:
    return installed(bake, e2e_dir, pytorch_index, mirror_url, poetry_env, e2e_report)


def job_env(project: Installed, cluster: slurm_cluster.Cluster) -> dict[str, str]:
    """What ``sbatch`` passes on to the job: the project's venv Python as ``PYTHON``."""
    return {**project.command_env(PYTHON=str(project.python)), **cluster.env}


def submit(
    cluster: slurm_cluster.Cluster, project: Installed, *words: str, wait: bool
) -> str:
    """``sbatch [--wait] --parsable WORDS`` from the project folder; the job's id."""
    result = cluster.command(
        "sbatch",
        "--parsable",
        *(("--wait",) if wait else ()),
        *words,
        env=job_env(project, cluster),
        cwd=project.path,
        timeout=600,
    )
    return result.stdout.strip().splitlines()[0].split(";")[0]


def new_folders(runs: Path, before: set[Path], pattern: str) -> list[Path]:
    return sorted(path for path in runs.glob(pattern) if path not in before and path.is_dir())


def read_rows(path: Path) -> list[dict[str, float]]:
    with path.open(newline="", encoding="utf-8") as file:
        return [
            {key: float(value) for key, value in row.items() if value not in ("", None)}
            for row in csv.DictReader(file)
        ]


def manifest(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return loaded


def job_log(project: Installed, job: str) -> str:
    path = project.path / "runs" / f"slurm-{job}.out"
    return path.read_text(errors="replace") if path.is_file() else f"(no {path})"


def assert_same_metrics(slurm: list[dict[str, float]], local: list[dict[str, float]]) -> None:
    assert [row["epoch"] for row in slurm] == [row["epoch"] for row in local]
    for ours, theirs in zip(slurm, local, strict=True):
        assert set(ours) == set(theirs)
        for key, value in ours.items():
            assert math.isclose(value, theirs[key], rel_tol=1e-6, abs_tol=1e-7), (
                f"epoch {ours['epoch']:.0f} {key}: {value} under Slurm, {theirs[key]} without"
            )


def test_fit_sbatch_trains_one_run_with_both_ranks(
    cluster: slurm_cluster.Cluster, project: Installed, e2e_report: Report
) -> None:
    runs = project.path / "runs"
    options = ("--trainer.max_epochs=3", *QUIET)
    before = set(runs.iterdir())
    began = time.monotonic()
    job = submit(
        cluster, project, *CPU_ONLY, "--ntasks-per-node=2", "slurm/fit.sbatch", *options,
        wait=True,
    )
    e2e_report.record("slurm", fit_sbatch_s=round(time.monotonic() - began, 1))
    folders = new_folders(runs, before, "*_fit")
    assert len(folders) == 1, f"run folders {folders}\n{job_log(project, job)}"
    slurm_run = folders[0]
    record = manifest(slurm_run)
    assert record["status"] == "complete", job_log(project, job)
    assert record["trainer"]["world_size"] == 2
    assert record["trainer"]["strategy"] == "DDPStrategy"
    assert record["slurm"]["job_id"] == job
    assert "--ntasks-per-node" not in " ".join(record["command"])  # Slurm's, not fit's
    log = job_log(project, job)
    assert log.count("SLURM auto-requeueing enabled") == 2, log  # both ranks, under Slurm
    assert f"job {job} (restart 0): 1 node(s) x 2 task(s)" in log

    # The same config, two processes, no Slurm: Lightning starts the second itself.
    before = set(runs.iterdir())
    run_tracked(
        [
            project.python, "-m", project.package, "fit",
            "--config", "configs/default.yaml",
            "--trainer.strategy=ddp", "--trainer.accelerator=cpu", "--trainer.devices=2",
            *options,
        ],
        project.path,
        project.command_env(),
        timeout=600,
    )
    (local_run,) = new_folders(runs, before, "*_fit")
    assert manifest(local_run)["trainer"]["world_size"] == 2
    assert_same_metrics(read_rows(slurm_run / "metrics.csv"), read_rows(local_run / "metrics.csv"))


def wait_for(check: Any, what: str, timeout: float, explain: Any) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{explain()}")


def test_preempted_fit_resumes_its_own_run(
    cluster: slurm_cluster.Cluster, project: Installed, e2e_report: Report
) -> None:
    runs = project.path / "runs"
    epochs = 14
    # Lightning saves the HPC checkpoint inside its USR1 handler, with a
    # barrier across the ranks; when the signal finds one rank inside a gloo
    # collective, the two wait on each other and the job never requeues (an
    # upstream race, seen about once in three runs here). Such an attempt is
    # cancelled and the preemption tried once more, in a new job and run.
    for attempt in (1, 2):
        before = set(runs.iterdir())
        # Small batches: about a second an epoch, so the signal lands mid-training.
        job = submit(
            cluster, project, *CPU_ONLY, "--ntasks-per-node=2", "slurm/fit.sbatch",
            f"--trainer.max_epochs={epochs}", "--data.batch_size=8", *QUIET,
            wait=False,
        )

        def explain(job: str = job) -> str:
            shown = cluster.command("scontrol", "show", "job", job).stdout
            return f"{shown}\n{job_log(project, job)}"

        def started_epochs(before: set[Path] = before) -> list[Path]:
            folders = new_folders(runs, before, "*_fit")
            metrics = folders[0] / "metrics.csv" if folders else None
            return folders if metrics and metrics.is_file() and len(read_rows(metrics)) >= 2 else []

        (run_dir,) = wait_for(started_epochs, "2 epochs", 300, explain)
        signalled = time.monotonic()
        cluster.command("scancel", "--signal=USR1", job)
        try:
            wait_for(
                lambda job=job: cluster.job_state(job) == "PENDING", "the requeue", 90, explain
            )
            break
        except AssertionError:
            if attempt == 2:
                raise
            cluster.command("scancel", job)
            wait_for(
                lambda job=job: cluster.job_state(job) in ("CANCELLED", "COMPLETED", "FAILED"),
                "the stuck attempt to end", 120, explain,
            )
    e2e_report.record("slurm", preemption_attempts=attempt)
    requeued = time.monotonic()
    # Requeued: the first session has ended. Lightning's SIGTERM handler waits
    # on the other rank, so Slurm kills the ranks before they can say how the
    # session ended; the next session records it.
    first = manifest(run_dir)
    assert first["status"] in ("running", "interrupted"), first
    checkpoints = sorted(run_dir.glob("hpc_ckpt_*.ckpt"))
    assert [path.name for path in checkpoints] == ["hpc_ckpt_1.ckpt"], explain()
    import torch  # the test environment's; the checkpoint is plain torch.save

    saved_epoch = int(torch.load(checkpoints[0], map_location="cpu", weights_only=False)["epoch"])
    rows_before = read_rows(run_dir / "metrics.csv")
    assert 2 <= saved_epoch < epochs

    # Slurm holds a requeued job for a while (BeginTime); release it now.
    cluster.command("scontrol", "update", f"JobId={job}", "StartTime=now")
    released = time.monotonic()
    wait_for(lambda: "Restored all states" in job_log(project, job), "the resume", 300, explain)
    e2e_report.record(
        "slurm",
        signal_to_requeue_s=round(requeued - signalled, 1),
        release_to_resume_s=round(time.monotonic() - released, 1),
    )
    wait_for(lambda: cluster.job_state(job) in ("COMPLETED", "FAILED", "CANCELLED"),
             "the requeued job to end", 400, explain)
    assert cluster.job_state(job) == "COMPLETED", explain()

    assert new_folders(runs, before, "*_fit") == [run_dir], "the requeued job made a new run"
    final = manifest(run_dir)
    assert final["status"] == "complete", explain()
    assert final["slurm"] == {**first["slurm"], "restart_count": 1}
    sessions = final["previous_sessions"]
    assert [session["status"] for session in sessions] == ["interrupted"]
    assert sessions[0]["slurm"]["restart_count"] == 0
    rows = read_rows(run_dir / "metrics.csv")
    assert [int(row["epoch"]) for row in rows] == list(range(epochs))
    # The epochs the checkpoint holds were not trained again: their rows stand.
    assert rows[:saved_epoch] == rows_before[:saved_epoch]
    log = job_log(project, job)
    assert "restart 1" in log
    assert "Restored all states from the checkpoint at" in log, log
    assert f"{run_dir.name}/hpc_ckpt_1.ckpt" in log, log

    table = project.path / "runs-table.csv"
    run_tracked(
        [project.python, "-m", project.package, "runs", "runs", "--csv", table],
        project.path,
        project.command_env(),
    )
    with table.open(newline="", encoding="utf-8") as file:
        listed = [row for row in csv.DictReader(file) if row["name"] == run_dir.name]
    assert len(listed) == 1
    assert listed[0]["status"] == "complete"
    assert int(listed[0]["epochs"]) == epochs


def test_tune_sbatch_array_shares_one_study(
    cluster: slurm_cluster.Cluster, project: Installed, e2e_report: Report
) -> None:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    runs = project.path / "runs"
    trials = 4
    before = set(runs.iterdir())
    began = time.monotonic()
    job = submit(
        cluster, project, *CPU_ONLY, "--array=0-1", "slurm/tune.sbatch",
        f"--trials={trials}", "--pruner=none", "--trainer.max_epochs=2",
        wait=True,
    )
    e2e_report.record("slurm", tune_array_s=round(time.monotonic() - began, 1))
    logs = "\n".join(job_log(project, f"{job}_{task}") for task in (0, 1))
    folders = new_folders(runs, before, "*_tune_*")
    assert [path.name.partition("_tune_")[2] for path in folders] == [f"job{job}"], logs
    study_dir = folders[0]
    storage = JournalStorage(JournalFileBackend(str(study_dir / "journal.log")))
    study = optuna.load_study(study_name=f"job{job}", storage=storage)
    found = study.get_trials(deepcopy=False)
    assert sorted(trial.number for trial in found) == list(range(trials)), logs
    assert {trial.state for trial in found} == {optuna.trial.TrialState.COMPLETE}, logs
    workers = {trial.user_attrs.get("worker") for trial in found}
    assert len(workers) == 2, f"trials ran by {workers}\n{logs}"
    trial_runs = sorted(study_dir.glob("*_fit_trial-*"))
    assert len(trial_runs) == trials
    assert all(manifest(folder)["status"] == "complete" for folder in trial_runs)
    for task in (0, 1):
        assert f"array task {task}" in job_log(project, f"{job}_{task}")
