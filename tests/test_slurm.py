"""The pipeline through the SLURM executor profile on a real single-node cluster that this test starts
(Debian's slurmctld, slurmd and munge, installed by `make setup` where it runs as root with apt).

Two fake GPUs (gres on /dev/null and /dev/zero) let the GPU rules' `--gpus=1` requests be scheduled on a
machine without GPUs. Without an accounting database `sacct` cannot report job states, so the plugin
is told to poll `squeue` (finished jobs stay visible for MinJobAge)."""
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, SHARED_DATASETS

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
ETC = Path("/etc/slurm")
CONF = """ClusterName=nasflow-test
SlurmctldHost={host}
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MinJobAge=600
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName={host} CPUs=16 RealMemory=64000 Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={host} MaxTime=INFINITE State=UP
"""


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "starting slurmd and munged needs root"
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch", "squeue") if shutil.which(b) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (make setup installs them as root with apt)"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed"
    if (ETC / "slurm.conf").exists():
        return f"{ETC / 'slurm.conf'} exists: a real cluster's configuration is not replaced by a test's"
    if subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode == 0:
        return "a slurmctld is already running here"
    return None


def _run(*cmd):
    env = dict(os.environ, SLURM_CONF=str(ETC / "slurm.conf"))  # this cluster's, whatever the caller exported
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, env=env)


def _stop(pid_file: Path) -> None:
    try:
        os.kill(int(pid_file.read_text().strip()), 15)
    except (OSError, ValueError):
        pass


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    (root / "slurm.conf").write_text(CONF.format(host=host, root=root))
    (root / "gres.conf").write_text("AutoDetect=off\nName=gpu File=/dev/null\nName=gpu File=/dev/zero\n")
    ETC.mkdir(parents=True, exist_ok=True)
    links = [ETC / "slurm.conf", ETC / "gres.conf"]
    for link in links:  # where the jobs' own srun calls look (they do not inherit SLURM_CONF)
        link.symlink_to(root / link.name)
    started_munge = False
    try:
        if _run("munge", "-n").returncode != 0:
            for d in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
                os.makedirs(d, exist_ok=True)
                shutil.chown(d, "munge", "munge")
            assert _run("su", "-s", "/bin/sh", "munge", "-c", "munged").returncode == 0
            started_munge = True
        for daemon in ("slurmctld", "slurmd"):
            res = _run(daemon)
            assert res.returncode == 0, f"{daemon}: {res.stderr}"
        deadline = time.time() + 60
        while time.time() < deadline and "idle" not in _run("sinfo", "-h", "-o", "%T").stdout:
            time.sleep(0.5)
        assert "idle" in _run("sinfo", "-h", "-o", "%T").stdout, (root / "slurmctld.log").read_text()[-2000:]
        yield root
    finally:
        _stop(root / "slurmd.pid")
        _stop(root / "slurmctld.pid")
        if started_munge:
            _stop(Path("/run/munge/munged.pid"))
        for link in links:
            if link.is_symlink():
                link.unlink()


def _jobs() -> list[dict]:
    out = _run("squeue", "--states=all", "-h", "-o", "%i|%P|%l|%T").stdout
    return [dict(zip(("id", "partition", "limit", "state"), line.split("|"))) for line in out.splitlines()]


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file(), reason="needs ../shared/datasets")
def test_the_pipeline_runs_through_the_slurm_profile(slurm_cluster, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    text = (ROOT / "params.yaml").read_text().replace("- ../shared/datasets", f"- {SHARED_DATASETS}")
    (work / "params.yaml").write_text(text)
    before = {j["id"] for j in _jobs()}
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(PATH=f"{Path(sys.executable).parent}:{env['PATH']}", SLURM_CONF=str(ETC / "slurm.conf"))
    # the README's cluster command, plus the status polling a cluster without accounting needs
    res = subprocess.run([SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--workflow-profile",
                          str(ROOT / "workflow" / "profiles" / "slurm"), "results/table1.csv",
                          "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
                          "--seconds-between-status-checks", "2",
                          "--config", "search={names: [darts, gold-nas], darts: {epochs: 1}}",
                          "train={recipes: {tiny: {epochs: 1}}, transfer: {datasets: []}}", "tracking={enabled: false}"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=1500)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert (work / "results" / "table1.csv").is_file()
    ran = [j for j in _jobs() if j["id"] not in before]
    submitted = out.count("submitted with SLURM jobid")
    assert len(ran) == submitted >= 8 and all(j["state"] == "COMPLETED" for j in ran), ran
    # data preparation, DARTS's best-of-two selection and the report on the CPU partition, at the smoke
    # profile's limits (runtime.minutes)
    cpu = [j for j in ran if j["partition"] == "cpu"]
    assert len(cpu) == 3 and {j["limit"] for j in cpu} == {"15:00"}
    gpu = [j for j in ran if j["partition"] == "gpu"]
    assert len(gpu) == len(ran) - 3 and {j["limit"] for j in gpu} == {"30:00", "15:00"}  # search/train; consistency
    for job in gpu:
        assert "gres:gpu:1" in _run("scontrol", "show", "job", job["id"]).stdout  # one GPU each
