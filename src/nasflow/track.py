"""The one module that talks to MLflow. It is imported lazily, so a machine without mlflow (a GPU node
with torch only) runs with `--no-track` or `tracking.enabled: false` and loses nothing but the run.

The default store is `sqlite:///mlflow.db` beside params.yaml; `MLFLOW_TRACKING_URI` overrides it.
A job started by the pipeline nests its run under the pipeline's run (NASFLOW_PARENT_RUN_ID). Every run
carries the git commit of the nasflow source that ran it and the settings profile."""
from __future__ import annotations

import math
import os
import sqlite3
import subprocess
from pathlib import Path

from nasflow.errors import NasflowError


def tracking_uri(params) -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    uri = params.get("tracking", {}).get("uri")
    if uri:
        return uri
    return f"sqlite:///{params.base_dir / 'mlflow.db'}"


# Where MLflow's sqlite store writes an absolute artifact path (it resolves even a relative one).
_ARTIFACT_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                     ("logged_models", "artifact_location"), ("model_versions", "source"),
                     ("model_versions", "storage_location"), ("workspaces", "default_artifact_root"))


def _default_store(params) -> Path | None:
    """mlflow.db beside params.yaml when that is the store in use (not a server, not a store of the
    user's own): nasflow then owns the artifact root, `mlruns/` beside it."""
    db = params.base_dir / "mlflow.db"
    return db if tracking_uri(params) == f"sqlite:///{db}" else None


def reroot_artifacts(params) -> int:
    """Point the default store's artifact locations at `mlruns/` beside it, where they are now. MLflow
    stores absolute paths, so a project directory that was moved or copied would show runs without
    artifacts in `mlflow ui`. Returns the number of rows rewritten (0 when nothing moved)."""
    db = _default_store(params)
    if db is None or not db.is_file():
        return 0
    here = str((params.base_dir / "mlruns").resolve())
    changed = 0
    with sqlite3.connect(db) as con:
        tables = {name for (name,) in con.execute("select name from sqlite_master where type='table'")}
        if "experiments" not in tables:
            return 0
        roots = set()
        for (location,) in con.execute("select artifact_location from experiments"):
            path = (location or "").split("://", 1)[-1].rstrip("/")
            if path.endswith("/mlruns") or "/mlruns/" in path:
                roots.add(path.rsplit("/mlruns", 1)[0] + "/mlruns")
        for old in roots - {here}:
            for table, column in _ARTIFACT_COLUMNS:
                if table not in tables or column not in {row[1] for row in con.execute(f"pragma table_info({table})")}:
                    continue
                cur = con.execute(f"update {table} set {column} = replace({column}, ?, ?) "
                                  f"where {column} like ? or {column} like ?", (old, here, f"%{old}", f"%{old}/%"))
                changed += cur.rowcount
    return changed


# MLflow 3's UI opens an experiment without this tag in its GenAI (traces) view; this value opens the
# model-training view (runs, metrics, logged models). The key and value are the UI's own.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def _experiment(mlflow, params) -> str:
    """The experiment's id, created with its artifact root beside the default store (not under whatever
    directory the first job happened to run in), and tagged as model training (an experiment created
    before the tag existed gets it too)."""
    name = params.get("tracking", {}).get("experiment", "nasflow")
    found = mlflow.get_experiment_by_name(name)
    if found is None:
        db = _default_store(params)
        location = (params.base_dir / "mlruns").resolve().as_uri() if db is not None else None
        try:
            mlflow.create_experiment(name, artifact_location=location, tags=dict([EXPERIMENT_KIND]))
        except Exception:  # another job created it first
            pass
        found = mlflow.get_experiment_by_name(name)
        if found is None:
            raise NasflowError(f"MLflow experiment {name!r} could not be created in {tracking_uri(params)}")
    key, value = EXPERIMENT_KIND
    if key not in found.tags:  # a user's own choice of view is left alone
        mlflow.MlflowClient().set_experiment_tag(found.experiment_id, key, value)
    return found.experiment_id


def source_commit(params) -> str | None:
    """The git commit of the nasflow source that runs (the checkout of an editable install), else of the
    project directory; None outside git. MLflow's own guess reads the entry point, which sits in the
    ignored .venv, so it finds none."""
    for where in (Path(__file__).resolve().parents[2], params.base_dir):
        try:
            found = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                                   timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if found.returncode == 0:
            return found.stdout.strip()
    return None


def _standard_tags(params) -> dict:
    commit = source_commit(params)
    return {"profile": str(params.profile), **({"mlflow.source.git.commit": commit} if commit else {})}


class NullRun:
    """Tracking switched off: the same calls, no effect."""

    run_id = None

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        pass

    def log_artifact(self, path) -> None:
        pass

    def set_tags(self, tags: dict) -> None:
        pass

    def log_model(self, model, input_example, contract: dict, tags: dict, extra_files=()) -> None:
        pass

    def finish(self, status: str = "FINISHED") -> None:
        pass


class MlflowRun(NullRun):
    def __init__(self, mlflow, run):
        self.mlflow, self.run_id = mlflow, run.info.run_id

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        clean = {k: float(v) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}
        if clean:
            self.mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path) -> None:
        if Path(path).exists():
            self.mlflow.log_artifact(str(path))

    def set_tags(self, tags: dict) -> None:
        self.mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_model(self, model, input_example, contract: dict, tags: dict, extra_files=()) -> None:
        """The network as an MLflow model (`mlflow.pytorch.load_model(f"runs:/{run_id}/model")`): a pickled
        module with nasflow's source inside it, so it loads where nasflow is not installed and `eval()`
        works (MLflow 3's default `pt2` export returns a graph whose `eval()` raises). `contract` (image
        size, channels, mean and std, class names) is the MLmodel's `metadata.nasflow` and the logged
        model's params; `usage_example.py` beside it classifies image files with it. The requirements
        are given, so logging does not start a subprocess per job to infer them."""
        import mlflow.pytorch
        import numpy as np
        import torch
        import torchvision
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        import nasflow

        requirements = [f"torch=={torch.__version__.split('+')[0]}", f"torchvision=={torchvision.__version__.split('+')[0]}",
                        f"mlflow=={self.mlflow.__version__}", "numpy", "pyyaml", "pillow"]
        shape = (-1, contract["channels"], contract["image_size"], contract["image_size"])
        signature = ModelSignature(Schema([TensorSpec(np.dtype(np.float32), shape)]),
                                   Schema([TensorSpec(np.dtype(np.float32), (-1, len(contract["classes"])))]))
        usage = Path(nasflow.__file__).parent / "train" / "usage_example.py"
        mlflow.pytorch.log_model(model, name="model", input_example=input_example, signature=signature,
                                 serialization_format="pickle", pip_requirements=requirements,
                                 code_paths=[str(Path(nasflow.__file__).parent)],
                                 extra_files=[str(usage), *(str(f) for f in extra_files)],
                                 metadata={"nasflow": contract},
                                 params={k: str(v)[:6000] for k, v in contract.items()},
                                 tags={k: str(v) for k, v in tags.items()})

    def finish(self, status: str = "FINISHED") -> None:
        self.mlflow.end_run(status=status)


def _flat(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value
    return out


def start_run(params, name: str, tags: dict, logged_params: dict, enabled: bool = True,
              resume_run_id: str | None = None) -> NullRun:
    """Start (or, after a resume, reopen) one run; `logged_params` are flattened to dotted names so
    every method and dataset shares the same parameter names in `mlflow ui`."""
    if not enabled or not params.get("tracking", {}).get("enabled", True):
        return NullRun()
    try:
        import mlflow
    except ImportError:
        raise NasflowError("mlflow is not installed here: pass --no-track (or set tracking.enabled=false)") from None
    mlflow.set_tracking_uri(tracking_uri(params))
    reroot_artifacts(params)
    mlflow.set_experiment(experiment_id=_experiment(mlflow, params))
    parent = os.environ.get("NASFLOW_PARENT_RUN_ID")
    if resume_run_id:
        run = mlflow.start_run(run_id=resume_run_id)
    else:
        run = mlflow.start_run(run_name=name, nested=bool(parent),
                               tags={**({"mlflow.parentRunId": parent} if parent else {}), **_standard_tags(params),
                                     **{k: str(v) for k, v in tags.items()}})
        flat = _flat("", logged_params, {})
        mlflow.log_params({k: str(v)[:6000] for k, v in flat.items()})
    return MlflowRun(mlflow, run)


def start_pipeline_run(params, targets: list[str]) -> str | None:
    """Create the store once, before any job starts (parallel jobs racing to create a fresh sqlite store
    crash), and open the parent run that every job of this invocation nests under."""
    if not params.get("tracking", {}).get("enabled", True):
        return None
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri(params))
    reroot_artifacts(params)
    experiment_id = _experiment(mlflow, params)
    run = MlflowClient().create_run(experiment_id, run_name=f"pipeline ({params.profile})",
                                    tags={"stage": "pipeline", **_standard_tags(params),
                                          "targets": " ".join(targets)[:5000]})
    return run.info.run_id


def finish_pipeline_run(params, run_id: str | None, status: str, results: Path | None = None) -> None:
    """End the pipeline's run; after a success, log the tables (as MLflow tables, shown in the run's
    artifacts and comparable across runs) and the figures of `results` on it."""
    if not run_id:
        return
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri(params))
    client = MlflowClient()
    if status == "FINISHED" and results is not None and results.is_dir():
        for table in sorted(results.glob("*.csv")):
            mlflow.log_table(data=pd.read_csv(table), artifact_file=f"tables/{table.stem}.json", run_id=run_id)
        if (results / "figures").is_dir():
            client.log_artifacts(run_id, str(results / "figures"), "figures")
    client.set_terminated(run_id, status=status)


class finishing:
    """`with finishing(run):` ends the run FINISHED; KILLED when it was stopped from outside (SIGTERM,
    Ctrl-C), so a resumed run reopens it; FAILED when the block raises (NaN loss, bad input found late)."""

    def __init__(self, run: NullRun):
        self.run = run

    def __enter__(self) -> NullRun:
        return self.run

    def __exit__(self, exc_type, exc, tb) -> bool:
        from nasflow.errors import Terminated

        stopped = exc_type is not None and issubclass(exc_type, (Terminated, KeyboardInterrupt))
        self.run.finish("KILLED" if stopped else "FAILED" if exc_type else "FINISHED")
        return False
