# `snakemake --cores all results/table1.csv`: the rules live in workflow/.
include: "workflow/Snakefile"
