"""One GPU per job on a multi-GPU workstation, tested without GPUs: CUDA_VISIBLE_DEVICES fakes the count
(it is what users and schedulers set), and each job reports the GPU it took."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SHARED_DATASETS
from nasflow.gpus import pipeline_environment, visible_gpus

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# A job that takes a GPU, says which, and holds it for argv[1] seconds.
HOLD = ("import os, sys, time; from nasflow import gpus; gpus.assign(); "
        "print(os.environ['CUDA_VISIBLE_DEVICES'], flush=True); time.sleep(float(sys.argv[1]))")


def test_visible_gpus_follow_cuda_visible_devices():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 5,7"}) == ["2", "5", "7"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == [] and visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert pipeline_environment(["0"], ROOT) == {}  # one GPU: nothing to share out


def test_live_jobs_hold_distinct_gpus_and_a_dead_jobs_gpu_is_free_again(tmp_path):
    env = dict(os.environ, **pipeline_environment(["3", "5"], tmp_path / "slots"))

    def start(seconds):
        return subprocess.Popen([sys.executable, "-c", HOLD, str(seconds)], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    first, second = start(60), start(60)
    try:
        gpu_of_first, gpu_of_second = first.stdout.readline().strip(), second.stdout.readline().strip()
        assert {gpu_of_first, gpu_of_second} == {"3", "5"}
        third = start(0)
        _, err = third.communicate(timeout=60)
        assert third.returncode != 0 and "every GPU of this pipeline (3,5) is held by another job" in err
        first.kill()  # its lock goes with its process
        first.wait()
        fourth = start(0)
        out, err = fourth.communicate(timeout=60)
        assert fourth.returncode == 0 and out.strip() == gpu_of_first, err
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATASETS / "cifar10-jpeg.npz").is_file(), reason="needs ../shared/datasets")
def test_parallel_pipeline_jobs_get_one_gpu_each_and_no_more_jobs_than_gpus(tmp_path):
    """Two fake GPUs, three searches, three cores: Snakemake runs at most two at once (a third job would
    find no free GPU and fail), and each job narrows CUDA_VISIBLE_DEVICES to the GPU it holds."""
    work = tmp_path / "work"
    work.mkdir()
    text = (ROOT / "params.yaml").read_text().replace("- ../shared/datasets", f"- {SHARED_DATASETS}")
    (work / "params.yaml").write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["CUDA_VISIBLE_DEVICES"] = "0,1"
    res = subprocess.run([SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--cores", "3", "all_searches", "--config",
                          "search={names: [darts, asap, entranas], darts: {epochs: 2}}", "tracking={enabled: false}"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    taken = []
    for method in ("darts", "asap", "entranas"):
        log = (work / "logs" / "search" / method / "seed0.log").read_text()
        found = re.findall(r"nasflow: GPU (\d) of 0,1 \(CUDA_VISIBLE_DEVICES=(\d)\)", log)
        assert len(found) == 1 and found[0][0] == found[0][1], log[:500]
        taken.append(found[0][0])
    assert set(taken) <= {"0", "1"}
