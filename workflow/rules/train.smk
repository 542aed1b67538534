# Retraining (every searched architecture on train.dataset) and transfer (a few cells on other datasets).

rule train:
    input:
        genotype=genotype_input,
        data=f"{DATA_ROOT}/{{dataset}}.npz",
    output:
        metrics="results/train/{arch_id}/{dataset}/seed{seed}/metrics.json",
    params:
        out=lambda w, output: os.path.dirname(output.metrics),
        genotype=genotype_of,
        recipe=lambda w: plan.recipe_for(PARAMS, w.dataset),
        inputs=lambda w: jobs.as_rule_params(jobs.train_inputs(
            PARAMS, jobs.genotype_content(genotype_of(w)), w.dataset, plan.recipe_for(PARAMS, w.dataset), int(w.seed))),
    log:
        "logs/train/{arch_id}/{dataset}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train/{arch_id}/{dataset}/seed{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    threads: 1
    resources:
        gpu=1,
        runtime=PARAMS["runtime"]["minutes"]["train"],
    shell:
        "{NASFLOW} train --genotype {params.genotype} --arch-id {wildcards.arch_id} --dataset {wildcards.dataset} "
        "--recipe {params.recipe} --seed {wildcards.seed} {SETTINGS} --out {params.out} --resume --replace-stale "
        "> {log} 2>&1"


rule all_trainings:
    input:
        training_outputs,
