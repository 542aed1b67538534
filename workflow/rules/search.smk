# One search per method x seed. A checkpoint: how many architectures it yields (one, or one per Pareto
# point) is known only when it ends, and the training rules fan out over them.
# Declared outputs are only those the verb writes when it ends (history.csv and checkpoint.pt grow
# epoch by epoch and are not declared), so a killed job leaves nothing Snakemake calls incomplete and
# its rerun resumes from the checkpoint.
checkpoint search:
    input:
        data=lambda w: data_input(STUDY.search_name(w.method).dataset),
    output:
        archs="results/search/{method}/seed{seed}/architectures.json",
        genotype="results/search/{method}/seed{seed}/genotype.json",
        summary="results/search/{method}/seed{seed}/search.json",
    params:
        out=lambda w, output: os.path.dirname(output.summary),
        inputs=lambda w: jobs.as_rule_params(STUDY.search_inputs(w.method, int(w.seed))),
    log:
        "logs/search/{method}/seed{seed}.log",
    benchmark:  # wall time and peak memory of each search (its checkpoint's seconds count search work only)
        "logs/benchmarks/search/{method}/seed{seed}.tsv"
    threads: 1
    resources:
        gpu=1,
        runtime=PARAMS["runtime"]["minutes"]["search"],
    shell:
        "{NASFLOW} search --method {wildcards.method} --seed {wildcards.seed} {SETTINGS} "
        "--out {params.out} --resume --replace-stale > {log} 2>&1"


rule all_searches:
    input:
        [f"{layout.search_dir(m, s)}/architectures.json" for m, s in STUDY.searches()],


# A `best_of` selection (search.protocol.<name>.select): which of a name's searches is retrained. A
# checkpoint: the trainings fan out over the kept search's architectures only.
checkpoint select:
    input:
        selection_inputs,
    output:
        "results/selection/{name}.json",
    params:
        inputs=lambda w: jobs.as_rule_params(STUDY.selection_inputs(w.name)),
    log:
        "logs/select/{name}.log",
    resources:
        runtime=PARAMS["runtime"]["minutes"]["select"],
    shell:
        "{NASFLOW} select --name {wildcards.name} {SETTINGS} --out {output} > {log} 2>&1"
