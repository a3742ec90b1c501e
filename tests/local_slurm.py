"""A throwaway SLURM on this machine, for the tests that run the recipe on a scheduler.

    with LocalSlurm(tmp_path) as cluster:          # or .start() and .stop()
        subprocess.run(["srun", "hostname"], env=cluster.env())

Debian's slurm-wlm and munge, run as root: munged with a temporary key, then slurmctld and slurmd,
in the foreground as children of this process, with a generated slurm.conf: one node (this host,
CPUs=2), one partition, state, spool, logs and the munge socket under `root`, ports that were free.
Clients (srun, sbatch, squeue, scancel, and make's launchers) find it through SLURM_CONF, which
`env()` adds. `start()` waits for the node to be idle; `stop()` cancels what is left in the queue,
then ends the daemons it started and the processes their jobs left (slurmstepd, tasks), found by the
path of this cluster's slurm.conf in their environment, and nothing else.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "srun", "sbatch", "squeue", "scancel", "scontrol", "sinfo")


class Unavailable(Exception):
    """Why no local SLURM can run here (the reason a test skips with)."""


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def slurm_conf(root: Path, host: str, cpus: int, ports: list[int]) -> str:
    return f"""\
ClusterName=speechprompt-test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
# a cancelled task gets SIGTERM, then SIGKILL 5 s later; finished jobs stay listed for an hour
KillWait=5
MinJobAge=3600
NodeName={host} CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class LocalSlurm:
    def __init__(self, root: Path, cpus: int = 2):
        self.root = Path(root)
        self.cpus = cpus
        self.conf = self.root / "slurm.conf"
        self.daemons: list[subprocess.Popen] = []

    def env(self, base=None) -> dict:
        """An environment whose SLURM clients use this cluster."""
        return dict(os.environ if base is None else base, SLURM_CONF=str(self.conf))

    def run(self, *argv, check=True) -> subprocess.CompletedProcess:
        result = subprocess.run(list(map(str, argv)), env=self.env(), capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv))} exited {result.returncode}: {result.stderr}")
        return result

    def start(self) -> LocalSlurm:
        """Bring the cluster up and wait for its node to be idle; raise Unavailable (why) where it cannot."""
        missing = [name for name in DAEMONS if not shutil.which(name, path=os.environ["PATH"] + ":/usr/sbin:/sbin")]
        if missing:
            raise Unavailable(f"slurm-wlm and munge are not installed ({', '.join(missing)} missing; "
                              f"apt-get install slurm-wlm munge)")
        if os.geteuid() != 0:
            raise Unavailable("the local SLURM's daemons run as root, and this is not root")
        for name in ("munge", "state", "spool", "log"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o755)  # munged checks the socket's directory is reachable by all
        key = self.root / "munge" / "key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        host = socket.gethostname().split(".")[0]
        self.conf.write_text(slurm_conf(self.root, host, self.cpus, free_ports(2)))
        sbin = lambda name: shutil.which(name, path=os.environ["PATH"] + ":/usr/sbin:/sbin")
        munge = self.root / "munge"
        try:
            self._daemon("munged", [sbin("munged"), "--foreground", "--force", f"--key-file={key}",
                                    f"--socket={munge}/socket", f"--pid-file={munge}/pid",
                                    f"--log-file={munge}/log", f"--seed-file={munge}/seed"])
            self._wait(lambda: (munge / "socket").exists(), "munged's socket")
            self._daemon("slurmctld", [sbin("slurmctld"), "-D", "-i"])
            self._daemon("slurmd", [sbin("slurmd"), "-D"])
            self._wait(lambda: self.run("sinfo", "-h", "-o", "%t", check=False).stdout.strip() == "idle",
                       "the node to be idle")
        except Unavailable:
            self.stop()
            raise
        return self

    def _daemon(self, name: str, argv: list) -> None:
        out = open(self.root / "log" / f"{name}.out", "w")
        self.daemons.append(subprocess.Popen(argv, env=self.env(), stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True))
        out.close()

    def _wait(self, ready, what: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if ready():
                return
            dead = [p for p in self.daemons if p.poll() is not None]
            if dead:
                break
            time.sleep(0.2)
        logs = "; ".join(f"{path.name}: {' | '.join(path.read_text(errors='replace').splitlines()[-3:])}"
                         for path in sorted((self.root / "log").glob("*.out")))
        raise Unavailable(f"the local SLURM did not start (waited for {what}): {logs}")

    def jobs(self) -> list[dict]:
        """Every job the controller remembers, as `scontrol show jobs -o` fields (JobId, JobName, NumTasks, ...)."""
        out = self.run("scontrol", "show", "jobs", "-o").stdout
        return [dict(field.split("=", 1) for field in line.split() if "=" in field)
                for line in out.splitlines() if line.startswith("JobId=")]

    def queue(self) -> list[str]:
        """The ids of the jobs pending or running."""
        return self.run("squeue", "-h", "-o", "%i", check=False).stdout.split()

    def stop(self) -> None:
        """Cancel the queue, end the daemons, then any process left that runs for this cluster."""
        if self.daemons and self.daemons[-1].poll() is None:
            ids = self.queue()
            if ids:
                self.run("scancel", *ids, check=False)
                deadline = time.monotonic() + 15
                while self.queue() and time.monotonic() < deadline:
                    time.sleep(0.5)
        for process in reversed(self.daemons):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.daemons = []
        for pid in self._strays():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _strays(self) -> list[int]:
        """Processes whose environment names this cluster's slurm.conf: its slurmstepd and their tasks."""
        marker = f"SLURM_CONF={self.conf}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
