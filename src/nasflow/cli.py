"""`nasflow <verb>`: the command line that users, Snakemake rules and DVC stages all call.

Every verb that reads settings takes `--params FILE [--profile P] [--set key=value ...]`; verbs that
write take `--out`. Bad input ends in one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from nasflow.errors import NasflowError, Terminated
from nasflow.catalog import methods as registry


def _settings_flags(p: argparse.ArgumentParser, out: bool = False, track: bool = False) -> None:
    if track:  # verbs that record an MLflow run
        p.add_argument("--no-track", action="store_true", help="do not record an MLflow run")
    p.add_argument("--params", default="params.yaml", help="settings file (default: params.yaml)")
    p.add_argument("--profile", default=None, help="overlay from params.yaml's profiles: (default: its `profile:`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set data.download=true (repeatable)")
    if out:
        p.add_argument("--out", required=True, help="output directory or file")


def _long_run_flags(p: argparse.ArgumentParser) -> None:
    """What every checkpointed verb (search, train) takes besides its own flags."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from --out's checkpoint when there is one")
    p.add_argument("--replace-stale", action="store_true",
                   help="with --resume: a checkpoint made with other settings is renamed aside and the run starts over")
    _settings_flags(p, out=True, track=True)


def _params(args):
    from nasflow.settings import load_params

    return load_params(args.params, args.profile, args.overrides)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


# ---- verbs ---------------------------------------------------------------------------------------

def cmd_count(args) -> None:
    from nasflow.catalog.sizes import recipe_network
    from nasflow.space.counting import count_network
    from nasflow.catalog.genotype import load_genotype
    from nasflow.study import study_of

    genotype = load_genotype(args.genotype)
    if args.recipe:
        if args.channels or args.layers:
            raise NasflowError("nasflow count: --recipe gives the network's channels and layers; drop --channels/--layers")
        network = recipe_network(study_of(_params(args)).recipe_settings(args.recipe), args.dataset, genotype)
    else:
        network = {"channels": args.channels or 36, "layers": args.layers or 20, "dataset": args.dataset}
    result = count_network(genotype, **network)
    if args.json:
        print(json.dumps(result))
    else:
        shape = ", ".join(f"{k}={v}" for k, v in network.items() if k != "dataset")
        print(f"{genotype.name or args.genotype}: {result['params_M']:.3f} M params, "
              f"{result['macs_M']:.1f} M MACs ({args.dataset}, {shape})")


def cmd_draw(args) -> None:
    from nasflow.space.draw import draw_genotype
    from nasflow.catalog.genotype import load_genotype

    print(draw_genotype(load_genotype(args.genotype), args.out))


def cmd_zoo(args) -> None:
    from nasflow.catalog.cells import zoo_entries
    from nasflow.catalog.genotype import zoo_genotype

    entries = zoo_entries()
    if args.json:
        print(json.dumps({name: zoo_genotype(name).to_json() for name in entries}, indent=1))
        return
    for name, e in entries.items():
        ref = e.get("reference_params_M")
        figures = f"{ref:.3f} M params, {e['reference_macs_M']:.1f} M MACs" if ref else "no reference figures"
        print(f"{name:18s} {figures}")


def cmd_params(args) -> None:
    """The merged settings, or with --search / --train what that one job reads, resolved (every default
    filled in), exactly as the job writes it to its settings.json."""
    import yaml

    from nasflow import jobs
    from nasflow.study import study_of

    params = _params(args)
    study = study_of(params)
    if args.search and args.train:
        raise NasflowError("nasflow params: give --search METHOD or --train GENOTYPE, not both")
    if args.search:
        inputs = study.search_inputs(args.search, args.seed)
    elif args.train:
        if not args.dataset or not args.recipe:
            raise NasflowError("nasflow params --train needs --dataset and --recipe (as `nasflow train` does)")
        inputs = study.train_inputs(jobs.genotype_content(args.train), args.dataset, args.recipe, args.seed)
    else:
        print(yaml.safe_dump(dict(params), sort_keys=False), end="")
        return
    print(json.dumps({**inputs, "fingerprint": jobs.fingerprint(inputs)}, indent=1))


def cmd_data_prepare(args) -> None:
    from nasflow.data.datasets import prepare

    overrides = list(args.overrides)
    if args.archive_dir:
        overrides.append(f"data.archive_dirs={json.dumps(args.archive_dir)}")
    if args.no_download:
        overrides.append("data.download=false")
    args.overrides = overrides
    params = _params(args)
    from nasflow import track

    tracker = track.start_run(params, f"data-{args.dataset}", tags={"stage": "data", "dataset": args.dataset},
                              logged_params={"dataset": args.dataset, "data": params["data"]},
                              enabled=not args.no_track)
    with track.finishing(tracker):
        path = prepare(params, args.dataset)
        tracker.set_tags({"prepared": path})
    print(path)


def cmd_search(args) -> None:
    from nasflow.search.engine import SearchRun

    if args.space is not None:
        if args.method != "pr-darts":
            raise NasflowError(f"--space is PR-DARTS's morphism space; method {args.method!r} has none")
        args.overrides = [*args.overrides, f"search.pr-darts.limits={args.space}"]
    params = _params(args)
    result = SearchRun(params, args.method, args.seed, args.out, track_runs=not args.no_track).run(resume=args.resume, replace_stale=args.replace_stale)
    print(f"{args.method} seed {args.seed}: {result['epochs']} epochs in {result['seconds']:.1f} s on "
          f"{result['device']} ({result['stopped']}); cell {result['params_M']:.3f} M params, "
          f"{result['macs_M']:.1f} M MACs -> {args.out}/genotype.json")


def cmd_train(args) -> None:
    from nasflow.train.trainer import TrainRun

    params = _params(args)
    m = TrainRun(params, args.genotype, args.dataset, args.recipe, args.seed, args.out, arch_id=args.arch_id,
                 track_runs=not args.no_track).run(resume=args.resume, replace_stale=args.replace_stale)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for all
        return
    print(f"{m['arch_id']} on {m['dataset']} ({m['recipe']}, seed {m['seed']}): top-1 error {m['top1_error']:.2f}% "
          f"after {m['epochs']} epochs ({m['train_seconds']:.1f} s on {m['device']}) -> {args.out}/metrics.json")


def cmd_consistency_supernet(args) -> None:
    from nasflow import track
    from nasflow.search.consistency import supernet_vs_child

    params = _params(args)
    tracker = track.start_run(params, f"consistency-{args.method}-s{args.seed}",
                              tags={"stage": "consistency", "method": args.method, "seed": args.seed},
                              logged_params={"method": args.method, "seed": args.seed}, enabled=not args.no_track)
    with track.finishing(tracker):
        r = supernet_vs_child(params, args.method, args.seed, args.search_dir, args.out)
        tracker.log_metrics({k: r[k] for k in ("supernet_error", "child_error", "error_gap") if r[k] is not None})
        tracker.log_artifact(args.out)
    if r["supernet_error"] is None:
        print(f"{args.method} seed {args.seed} (epoch {r['epoch']}): {r['note']} -> {args.out}")
        return
    print(f"{args.method} seed {args.seed} (epoch {r['epoch']}, {r['images']} validation images): super-net "
          f"{r['supernet_error']:.2f}% error, child {r['child_error']:.2f}%, gap {r['error_gap']:.2f} -> {args.out}")


def cmd_plan(args) -> None:
    from nasflow import estimate

    found = estimate.summary(_params(args), args.root)
    if args.published:
        print(estimate.render_published(found))
    else:
        print(json.dumps(found, indent=1) if args.json else estimate.render(found))


def cmd_select(args) -> None:
    from nasflow import io as nio
    from nasflow import track
    from nasflow.selection import select

    params = _params(args)
    tracker = track.start_run(params, f"select-{args.name}", tags={"stage": "select", "method": args.name},
                              logged_params={"name": args.name}, enabled=not args.no_track)
    with track.finishing(tracker):
        try:
            chosen = select(params, args.name, args.root)
        except FileNotFoundError as exc:
            raise NasflowError(f"a result file is missing: {exc.filename} (run its searches first)") from None
        nio.write_json(Path(args.out), chosen)
        tracker.log_metrics({"selected_error": next(c["error"] for c in chosen["candidates"] if c["seed"] == chosen["seed"])})
        tracker.set_tags({"selected_seed": chosen["seed"], "arch_id": chosen["arch_id"]})
        tracker.log_artifact(args.out)
    shown = ", ".join(f"seed {c['seed']} {c['error']:.2f}%" for c in chosen["candidates"])
    print(f"{args.name}: best of {chosen['best_of']} by {chosen['by']} is seed {chosen['seed']} ({chosen['arch_id']}); "
          f"{shown} -> {args.out}")


def cmd_consistency_kendall(args) -> None:
    from nasflow.search.consistency import kendall_table

    r = kendall_table(args.search_dir, args.train_root, args.dataset, args.out)
    tau = "undefined (a constant column)" if r["kendall_tau"] is None else f"{r['kendall_tau']:.3f}"
    print(f"Kendall tau over {r['n']} searched cells ({args.dataset}): {tau} -> {args.out}")


def cmd_tracking_reroot(args) -> None:
    from nasflow import track

    params = _params(args)
    changed = track.reroot_artifacts(params)
    where = params.base_dir / "mlruns"
    print(f"{changed} artifact locations now point into {where}" if changed else
          f"the MLflow store beside {args.params} already points into {where} (or is not nasflow's default store)")


def cmd_report(args) -> None:
    from nasflow.report.figures import build_figures
    from nasflow.report.tables import build_tables, write_tables

    from nasflow import track

    params = _params(args)
    tracker = track.start_run(params, "report", tags={"stage": "report"}, logged_params={"root": args.root},
                              enabled=not args.no_track)
    with track.finishing(tracker):
        try:
            tables = build_tables(params, args.root)
        except FileNotFoundError as exc:
            raise NasflowError(f"a result file is missing: {exc.filename} (run the pipeline first: "
                               "snakemake --cores all results/table1.csv)") from None
        written = write_tables(tables, args.out)
        written += build_figures(params, tables, args.root, Path(args.out) / "figures")
        for path in written:
            tracker.log_artifact(path)
    print(f"{len(written)} files written under {args.out}")


def cmd_bench_train(args) -> None:
    import torch

    from nasflow.train.bench import bench_train

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = bench_train(args.genotype, args.channels, args.layers, args.batch, args.steps, args.warmup, args.device)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"training step of {args.genotype} (C={args.channels}, {args.layers} cells, batch {args.batch}) on {device}, "
          f"{args.steps} timed steps after {args.warmup} warm-up steps each:")
    for row in rows:
        print(f"  {row['path']:22s} {row['images_per_second']:9.1f} img/s   x{row['ratio_to_eager']:.2f} vs eager")


def cmd_bench_search(args) -> None:
    from nasflow.search.bench import bench_search

    rows = bench_search(args.channels, args.layers, args.batch, args.steps, args.warmup, args.device, args.threads)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    memory = "peak allocated" if device.startswith("cuda") else "peak RSS over the pre-build RSS"
    print(f"search step (first-order bi-level, 8 ops) of the super-net, C={args.channels}, {args.layers} cells, "
          f"batch {args.batch} on {device}; {args.steps} timed steps after {args.warmup} warm-up, each rung in its "
          f"own process; memory = {memory}:")
    from nasflow.catalog.published import measure_of

    paper = {r["rung"]: (measure_of(r["rung"], "memory_gb_at_batch_64"), measure_of(r["rung"], "search_gpu_days"))
             for r in rows}
    base = paper[rows[0]["rung"]]
    for r in rows:
        memory, days = paper[r["rung"]]
        beside = ""
        if memory and days and base[0] and base[1]:
            beside = (f"   paper (EnTranNAS Table 3, batch 64 on a GTX 1080 Ti): {memory[0]:.1f} G "
                      f"x{memory[0] / base[0][0]:.2f}, search {days[0]:.2f} GPU-days at its largest batch "
                      f"x{days[0] / base[1][0]:.2f}")
        print(f"  {r['rung']:26s} {r['step_seconds']:8.3f} s/step  x{r['time_ratio']:.2f}   {r['peak_MB']:9.1f} MB  "
              f"x{r['memory_ratio']:.2f}   {r['ops_run']:4d} op modules run per forward{beside}")


def _bench_flags(q: argparse.ArgumentParser, channels: int, layers: int, batch: int, steps: int, warmup: int) -> None:
    q.add_argument("--channels", type=_positive, default=channels)
    q.add_argument("--layers", type=_positive, default=layers)
    q.add_argument("--batch", type=_positive, default=batch)
    q.add_argument("--steps", type=_positive, default=steps)
    q.add_argument("--warmup", type=int, default=warmup)
    q.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: the GPU when there is one)")
    q.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nasflow", description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("count", help="parameters and MACs of a cell's evaluation network")
    p.add_argument("--genotype", required=True, help="a published cell name (see `nasflow zoo`) or a JSON file")
    p.add_argument("--channels", type=_positive, default=None, help="default 36 (or the recipe's)")
    p.add_argument("--layers", type=_positive, default=None, help="default 20 (or the recipe's)")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--recipe", default=None, help="count the network this recipe of train.recipes trains the cell in "
                   "(its channels, layers, SE, stem)")
    p.add_argument("--json", action="store_true", help='print {"params_M": ..., "macs_M": ...}')
    _settings_flags(p)
    p.set_defaults(func=cmd_count)

    p = verbs.add_parser("draw", help="draw a genotype's cells to PNG or SVG")
    p.add_argument("--genotype", required=True)
    p.add_argument("--out", required=True, help="FILE.png or FILE.svg")
    p.set_defaults(func=cmd_draw)

    p = verbs.add_parser("zoo", help="list the published cells addressable by name")
    p.add_argument("--json", action="store_true", help="print every cell in the general genotype form")
    p.set_defaults(func=cmd_zoo)

    p = verbs.add_parser("params", help="print the merged, validated settings, or what one job reads")
    _settings_flags(p)
    p.add_argument("--search", metavar="METHOD", help="print what this search reads (its settings.json)")
    p.add_argument("--train", metavar="GENOTYPE", help="print what this training reads (its settings.json)")
    p.add_argument("--dataset", help="with --train")
    p.add_argument("--recipe", help="with --train")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_params)

    p = verbs.add_parser("search", help="search a cell on the shared supernet")
    p.add_argument("--method", required=True, help="a registered method (" + ", ".join(registry.names()) +
                   ") or a variant under search.variants (it searches with its method and settings overlay)")
    p.add_argument("--space", default=None, help="pr-darts: Table 2's search space, the morphism limits named under "
                   "search.pr-darts.limits_by_name (darts-like, depth-restricted, unrestricted); short for "
                   "--set search.pr-darts.limits=NAME")
    _long_run_flags(p)
    p.set_defaults(func=cmd_search)

    p = verbs.add_parser("plan", help="the jobs these settings imply per stage, and an estimate of their GPU-hours")
    _settings_flags(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON (with every job under `jobs`)")
    p.add_argument("--published", action="store_true", help="print, as a Markdown table, every published row of the "
                   "papers with the jobs that produce its number")
    p.add_argument("--root", default=None, help="where results/ is (default: beside --params): searches that have "
                   "ended fan out as they did, the others by an estimate")
    p.set_defaults(func=cmd_plan)

    p = verbs.add_parser("select", help="a best_of selection: which of a name's searches is retrained")
    p.add_argument("--name", required=True, help="a search name whose search.protocol has select: {best_of: N, by: ...}")
    p.add_argument("--root", default=".", help="the directory holding results/ (default: .)")
    _settings_flags(p, out=True, track=True)
    p.set_defaults(func=cmd_select)

    p = verbs.add_parser("train", help="train an evaluation network to a recipe (retraining, transfer)")
    p.add_argument("--genotype", required=True, help="a published cell name or a genotype JSON file")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--recipe", required=True, help="a recipe name under train.recipes in params.yaml")
    p.add_argument("--arch-id", default=None, help="the architecture's id in results (default: the genotype's name)")
    _long_run_flags(p)
    p.set_defaults(func=cmd_train)

    p = verbs.add_parser("bench", help="throughput measurements, each path against the eager one in the same run")
    bench = p.add_subparsers(dest="bench_verb", required=True, metavar="WHAT")
    q = bench.add_parser("train", help="training throughput of an evaluation network")
    q.add_argument("--genotype", default="DARTS_V2")
    _bench_flags(q, channels=36, layers=20, batch=96, steps=5, warmup=2)
    q.set_defaults(func=cmd_bench_train)

    q = bench.add_parser("search", help="EnTranNAS Table 3: DARTS super-net, + Engine/Transit, + sharing, + bottleneck")
    _bench_flags(q, channels=16, layers=8, batch=64, steps=3, warmup=1)
    q.set_defaults(func=cmd_bench_search)

    p = verbs.add_parser("consistency", help="super-net against derived networks (EnTranNAS Tables 1 and 2)")
    cons = p.add_subparsers(dest="consistency_verb", required=True, metavar="WHAT")
    q = cons.add_parser("supernet", help="error of a search's super-net against its derived child network")
    q.add_argument("--method", required=True)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--search-dir", required=True, help="the search's output directory (holds checkpoint.pt)")
    _settings_flags(q, out=True, track=True)
    q.set_defaults(func=cmd_consistency_supernet)
    q = cons.add_parser("kendall", help="Kendall's tau between super-net and retrained errors over searched cells")
    q.add_argument("--search-dir", action="append", required=True, help="a finished search directory (repeat, 2 or more)")
    q.add_argument("--train-root", default="results/train", help="holds <arch_id>/<dataset>/seed*/metrics.json")
    q.add_argument("--dataset", default="cifar10")
    q.add_argument("--out", required=True, help="FILE.json (the rows also go to FILE.csv)")
    q.set_defaults(func=cmd_consistency_kendall)

    p = verbs.add_parser("report", help="tables (CSV + Markdown) and figures from the result files")
    p.add_argument("--root", default=".", help="directory that holds results/ (default: here)")
    _settings_flags(p, out=True, track=True)
    p.set_defaults(func=cmd_report)

    p = verbs.add_parser("tracking", help="the MLflow store beside params.yaml")
    tracking = p.add_subparsers(dest="tracking_verb", required=True, metavar="ACTION")
    q = tracking.add_parser("reroot", help="after moving or copying the project: point the runs' artifacts at "
                            "its mlruns/ (every tracked verb and the pipeline also do it)")
    _settings_flags(q)
    q.set_defaults(func=cmd_tracking_reroot)

    p = verbs.add_parser("data", help="dataset preparation")
    data_verbs = p.add_subparsers(dest="data_verb", required=True, metavar="ACTION")
    q = data_verbs.add_parser("prepare", help="get a dataset ready under data.root")
    q.add_argument("dataset")
    q.add_argument("--archive-dir", action="append", default=[], help="look here for archives (repeatable)")
    q.add_argument("--no-download", action="store_true")
    _settings_flags(q, track=True)
    q.set_defaults(func=cmd_data_prepare)
    return parser


def _terminate(signum, frame):
    raise Terminated()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM (SLURM's time limit or preemption) unwinds like Ctrl-C: files are written atomically, so
    # what is on disk is the last complete epoch's checkpoint, and the MLflow run is marked KILLED.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.verb in ("search", "train", "consistency"):  # before CUDA starts: one GPU per pipeline job
            from nasflow import gpus

            gpus.assign()
        args.func(args)
    except NasflowError as exc:
        print(f"nasflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasflow: interrupted; rerun with --resume to continue from the last checkpoint", file=sys.stderr)
        return 130
    except Terminated:
        print("nasflow: terminated (SIGTERM); rerun with --resume to continue from the last checkpoint",
              file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
