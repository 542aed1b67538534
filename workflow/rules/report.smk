# Tables (CSV + Markdown) and figures, from the result files only.
REPORT = ["table1", "table2", "table3", "pareto"]


rule report:
    input:
        trainings=training_outputs,
        searches=[f"{plan.search_dir(m, s)}/search.json" for m, s in plan.searches(PARAMS)],
    output:
        [f"results/{t}.{ext}" for t in REPORT for ext in ("csv", "md")],
        "results/figures/pareto.png",
        "results/figures/search_curves.png",
    log:
        "logs/report.log",
    shell:
        "{NASFLOW} report {SETTINGS} --out results > {log} 2>&1"
