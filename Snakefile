# `snakemake --cores all results/table1.csv`: the rules live in workflow/.
include: "workflow/Snakefile"


# Here, not in workflow/: Snakemake keeps `default_target` only from the main Snakefile (an included
# file's is dropped when the include returns), and without it `snakemake` and `snakemake --report
# report.zip` with no target would have no job at all.
rule all:
    """`snakemake --cores all` with no target: the tables and figures, and so every job behind them."""
    default_target: True
    input:
        [f"results/{t}.csv" for t in REPORT],
