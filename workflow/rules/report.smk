# Tables (CSV + Markdown) and figures, from the result files only.
REPORT = ["table1", "table2", "table3", "pareto", "consistency"]  # `rule all` (in ../../Snakefile) asks for them


rule consistency:
    """EnTranNAS Table 1 for any search: its super-net against the derived child on the validation data."""
    input:
        summary="results/search/{method}/seed{seed}/search.json",
    output:
        "results/consistency/{method}/seed{seed}.json",
    params:
        search=lambda w, input: os.path.dirname(input.summary),
        inputs=lambda w: jobs.as_rule_params(STUDY.search_inputs(w.method, int(w.seed))),
    log:
        "logs/consistency/{method}/seed{seed}.log",
    threads: 1
    resources:
        gpu=1,
        runtime=PARAMS["runtime"]["minutes"]["consistency"],
    shell:
        "{NASFLOW} consistency supernet --method {wildcards.method} --seed {wildcards.seed} {SETTINGS} "
        "--search-dir {params.search} --out {output} > {log} 2>&1"


rule report:
    input:
        trainings=training_outputs,
        searches=[f"{layout.search_dir(m, s)}/search.json" for m, s in STUDY.searches()],
        consistency=[layout.consistency_file(m, s) for m, s in STUDY.consistency_searches()],
        selections=[layout.selection_file(n) for n in STUDY.selected_names()],
    output:
        # `snakemake --report report.html` shows the tables and figures with these captions
        [report(f"results/{t}.csv", caption=f"../report/{t}.rst", category="Tables") for t in REPORT],
        [f"results/{t}.md" for t in REPORT],
        "results/metrics.json",
        report("results/figures/pareto.png", caption="../report/pareto_figure.rst", category="Figures"),
        report("results/figures/search_curves.png", caption="../report/search_curves.rst", category="Figures"),
        report("results/figures/published.png", caption="../report/published.rst", category="Figures"),
    params:
        # the tables describe each method's settings and read the seeds and transfer lists
        inputs=jobs.as_rule_params(STUDY.report_inputs()),
    log:
        "logs/report.log",
    resources:
        runtime=PARAMS["runtime"]["minutes"]["report"],
    shell:
        "{NASFLOW} report {SETTINGS} --out results > {log} 2>&1"
