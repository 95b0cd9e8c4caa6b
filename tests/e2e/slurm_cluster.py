"""A one-node Slurm cluster on 127.0.0.1 for the end-to-end tier, started by hand.

Debian's ``slurm-wlm`` and ``munge`` packages, with no systemd: ``munged``
with its key and socket in a temporary folder, ``slurmctld`` and ``slurmd``
in the foreground (``-D``), each in a process group of its own, with a
``slurm.conf`` on free ports. :func:`start` returns a :class:`Cluster`
whose :meth:`Cluster.stop` ends every daemon and every job step they
started; :func:`unavailable` says why a cluster cannot be had here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .steps import RUN_MARKER, stop_marked

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "scontrol", "scancel", "squeue", "sinfo", "srun")


def _binary(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.is_file()), None
    )


def unavailable() -> str | None:
    """Why no cluster can be started here, or ``None`` when it can."""
    missing = [name for name in (*DAEMONS, "mungekey", *CLIENTS) if _binary(name) is None]
    if missing:
        return (
            f"Slurm/munge not installed ({', '.join(missing)} missing):"
            " apt-get install slurm-wlm munge"
        )
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs; this test runs as an ordinary user"
    return None


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


@dataclass
class Cluster:
    """A running one-node cluster: its folder, config and daemons."""

    home: Path
    env: dict[str, str]
    daemons: list[subprocess.Popen[bytes]] = field(default_factory=list)
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Carried in the environment of the daemons and of every job (see ``steps``)."""

    def command(
        self,
        *words: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command against this cluster (it must succeed)."""
        result = subprocess.run(
            list(words),
            cwd=cwd,
            env={**(env or os.environ), **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"{' '.join(words)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result

    def job_state(self, job: str) -> str:
        """``JobState`` of a job as ``scontrol show job`` reports it."""
        shown = self.command("scontrol", "show", "job", job).stdout
        for word in shown.split():
            if word.startswith("JobState="):
                return word.split("=", 1)[1]
        raise AssertionError(f"no JobState for job {job}:\n{shown}")

    def log(self, name: str) -> str:
        path = self.home / "log" / name
        return path.read_text(errors="replace") if path.is_file() else ""

    def stop(self) -> dict[int, str]:
        """Cancel every job, stop the daemons with their process groups; kill what is left.

        Returns:
            pid -> command line of the processes still running after all that
            (killed now): a job step or daemon that would have outlived the test.
        """
        with contextlib.suppress(Exception):
            subprocess.run(
                ["scancel", "--full", "--user", str(os.getuid())],
                env={**os.environ, **self.env},
                capture_output=True,
                timeout=20,
                check=False,
            )
        for daemon in reversed(self.daemons):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGTERM)
        for daemon in reversed(self.daemons):
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=10)
        left = stop_marked(self.marker, grace=5)
        shutil.rmtree(self.home, ignore_errors=True)
        return left


def _wait_for(check: object, what: str, cluster: Cluster, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        for daemon in cluster.daemons:
            if daemon.poll() is not None:
                raise RuntimeError(
                    f"{daemon.args[0]} exited ({daemon.returncode}) before {what}:\n"
                    + "".join(cluster.log(name)[-3000:] for name in ("slurmctld", "slurmd"))
                )
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def start(cpus: int | None = None) -> Cluster:
    """Start munged, slurmctld and slurmd for one node, ``localhost``, on 127.0.0.1.

    Raises:
        RuntimeError: A daemon did not come up (with its log).
    """
    home = Path(tempfile.mkdtemp(prefix="slurm-"))
    home.chmod(0o755)  # munged wants its socket folder not writable by others
    for sub in ("munge", "log", "state", "spool"):
        (home / sub).mkdir(mode=0o755)
    cpus = cpus or os.cpu_count() or 1
    ctld_port, slurmd_port = _free_ports(2)
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    conf = home / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=e2e",
                "SlurmctldHost=localhost(127.0.0.1)",
                f"SlurmctldPort={ctld_port}",
                f"SlurmdPort={slurmd_port}",
                f"SlurmUser={user.strip()}",
                "AuthType=auth/munge",
                f"AuthInfo=socket={home / 'munge' / 'socket'}",
                "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                f"StateSaveLocation={home / 'state'}",
                f"SlurmdSpoolDir={home / 'spool'}",
                f"SlurmctldPidFile={home / 'slurmctld.pid'}",
                f"SlurmdPidFile={home / 'slurmd.pid'}",
                f"SlurmctldLogFile={home / 'log' / 'slurmctld'}",
                f"SlurmdLogFile={home / 'log' / 'slurmd'}",
                "SlurmctldDebug=info",
                "SlurmdDebug=info",
                "ReturnToService=2",
                "MpiDefault=none",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "SchedulerType=sched/backfill",
                "KillWait=10",
                "InactiveLimit=0",
                "MinJobAge=300",
                f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory // 2}"
                " State=UNKNOWN",
                "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        ),
        encoding="utf-8",
    )
    cluster = Cluster(home, {"SLURM_CONF": str(conf)})
    cluster.env[RUN_MARKER] = cluster.marker
    env = cluster.env
    key = home / "munge" / "munge.key"
    try:
        subprocess.run(
            [str(_binary("mungekey")), "--create", f"--keyfile={key}"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        key.chmod(0o400)
        munge_words = [
            str(_binary("munged")),
            "--foreground",
            "--force",
            f"--socket={home / 'munge' / 'socket'}",
            f"--key-file={key}",
            f"--pid-file={home / 'munge' / 'munged.pid'}",
            f"--log-file={home / 'log' / 'munged'}",
            f"--seed-file={home / 'munge' / 'seed'}",
        ]
        daemon_env = {**os.environ, **env}
        for words in (
            munge_words,
            [str(_binary("slurmctld")), "-D", "-c", "-i", "-f", str(conf)],
            [str(_binary("slurmd")), "-D", "-N", "localhost", "-f", str(conf)],
        ):
            log = (home / "log" / f"{Path(words[0]).name}.out").open("wb")
            cluster.daemons.append(
                subprocess.Popen(
                    words, env=daemon_env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
            if words is munge_words:
                _wait_for((home / "munge" / "socket").exists, "munged's socket", cluster)

        def node_idle() -> bool:
            shown = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%T"],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            return shown.returncode == 0 and shown.stdout.strip() == "idle"

        _wait_for(node_idle, "the node to be idle", cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster
