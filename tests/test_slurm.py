"""The workflow through profiles/slurm on a real single-node SLURM that this test starts itself.

Debian's slurm-wlm and munge (installed with apt-get where they are missing), a munge daemon with
a key of its own, slurmctld and slurmd on localhost from a minimal slurm.conf. The model-only
workflow (FUSED_LAYER_NO_GPU=1; the build stage too where nvcc is on PATH) then runs every job as
a SLURM job through snakemake-executor-plugin-slurm, and the report builds from the results.

The cluster has no accounting database, so the plugin asks squeue for job states
(--slurm-status-command squeue; MinJobAge keeps finished jobs visible). Its job-step executor
drops SLURM_* variables, SLURM_CONF among them, before calling srun, so the config must sit where
srun looks by default: /etc/slurm/slurm.conf, which the test writes only where there is none (or
where it wrote it before) and removes afterwards.
"""

import getpass
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / "tests" / "data" / "config.yaml"
SLURM_CONF = Path("/etc/slurm/slurm.conf")
MARK = "# written by tests/test_slurm.py (removed when the test ends)"
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
TOOLS = ("sbatch", "squeue", "sinfo", "srun", "slurmctld", "slurmd", "munged")


def which(name: str) -> str | None:
    return shutil.which(name, path=SBIN)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install_slurm() -> None:
    """slurm-wlm and munge from Debian's packages; skips where that cannot be done."""
    if all(which(t) for t in TOOLS):
        return
    if which("apt-get") is None:
        pytest.skip("SLURM is not installed and apt-get is not available to install slurm-wlm and munge")
    if os.geteuid() != 0:
        pytest.skip("SLURM is not installed and installing slurm-wlm and munge needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, f"{' '.join(cmd)} failed: {r.stdout[-2000:]}{r.stderr[-2000:]}"
    missing = [t for t in TOOLS if which(t) is None]
    assert not missing, f"after apt-get install slurm-wlm munge: {missing} still missing"


def slurm_conf(d: Path, host: str) -> str:
    mem_mb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1]) // 1024
    return f"""{MARK}
ClusterName=fusedlayertest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge.socket
SlurmUser={getpass.getuser()}
SlurmdUser=root
StateSaveLocation={d}/ctld
SlurmdSpoolDir={d}/slurmd
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=600
SchedulerParameters=sched_interval=1
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def stop(pid_file: Path) -> None:
    """End a daemon this test started, by the process id it wrote."""
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.1)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A one-node SLURM on localhost (munged, slurmctld, slurmd), stopped and removed afterwards."""
    if sys.platform != "linux":
        pytest.skip("the SLURM test runs on Linux")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm is not installed: pip install -e '.[slurm]'")
    if os.geteuid() != 0:
        pytest.skip("starting slurmd and writing /etc/slurm/slurm.conf needs root")
    if SLURM_CONF.exists() and MARK not in SLURM_CONF.read_text(errors="replace"):
        pytest.skip(f"this machine has a SLURM configuration ({SLURM_CONF}); the test starts its own only where none is")
    install_slurm()
    d = tmp_path_factory.mktemp("slurm")
    d.chmod(0o755)  # munged wants its socket's folder reachable, and none writable by others
    key = d / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    started: list[Path] = []
    try:
        subprocess.run([which("munged"), "--force", f"--socket={d}/munge.socket", f"--key-file={key}",
                        f"--pid-file={d}/munged.pid", f"--log-file={d}/munged.log", f"--seed-file={d}/munged.seed"],
                       check=True, timeout=30)  # fmt: skip
        started.append(d / "munged.pid")
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SLURM_CONF.write_text(slurm_conf(d, host))
        for daemon, pid in (("slurmctld", "slurmctld.pid"), ("slurmd", "slurmd.pid")):
            args = [which(daemon), "-f", str(SLURM_CONF)] + (["-c"] if daemon == "slurmctld" else [])
            subprocess.run(args, check=True, timeout=30)
            started.append(d / pid)
        deadline = time.time() + 60
        state = ""
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip()
            if state in ("idle", "mixed"):
                break
            time.sleep(0.5)
        logs = "".join(p.read_text()[-1500:] for p in (d / "slurmctld.log", d / "slurmd.log") if p.exists())
        assert state in ("idle", "mixed"), f"node not ready (sinfo says {state!r}):\n{logs}"
        yield d
    finally:
        for pid_file in reversed(started):
            stop(pid_file)
        if SLURM_CONF.exists() and MARK in SLURM_CONF.read_text(errors="replace"):
            SLURM_CONF.unlink()


def smk(*args, cwd, env=None):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), *map(str, args)],
        cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=900,
    )  # fmt: skip


def test_model_only_workflow_runs_as_slurm_jobs_and_reports(slurm_cluster, tmp_path):
    work = tmp_path / "work"
    env = {"FUSED_LAYER_NO_GPU": "1"}
    args = ("-d", work, "--configfile", TEST_CONFIG)
    r = smk(*args, "--workflow-profile", ROOT / "profiles" / "slurm", "--slurm-status-command", "squeue",
            "--slurm-init-seconds-before-status-checks", "2", "--default-resources", "mem_mb=500", "runtime=10",
            cwd=tmp_path, env=env)  # fmt: skip
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    steps = int(re.findall(r"(\d+) of \d+ steps \(100%\) done", out)[-1])
    submitted = set(re.findall(r"has been submitted with SLURM jobid (\d+)", out))
    assert len(submitted) == steps - 1, out[-4000:]  # every job but the local target rule `all`
    states = subprocess.run(["squeue", "--state=all", "-h", "-o", "%i %T"], capture_output=True, text=True).stdout
    assert {i: s for i, s in (line.split() for line in states.splitlines()) if i in submitted} == dict.fromkeys(
        submitted, "COMPLETED")  # fmt: skip
    assert (work / "results" / "model" / "alexnet" / "pyramids.csv").stat().st_size > 0
    if which("nvcc"):  # the build stage ran as SLURM jobs too
        assert re.search(r"rule build:", out) and (work / "results" / "build" / "sm_90" / "lbl.cubin").exists()
    report = smk(*args, "--report", "report.html", cwd=tmp_path, env=env)
    assert report.returncode == 0, report.stderr[-4000:]
    assert (work / "report.html").stat().st_size > 50_000
