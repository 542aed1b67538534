# Retraining (what each search's protocol picks of its kept architectures, `retrain`) and transfer (a few cells on other
# datasets) under results/train/; a `best_of ... by: short_retrain` selection's short trainings under
# results/short-retrain/. Each job's recipe: the study's recipe_for.

rule train:
    input:
        genotype=genotype_input,
        data=lambda w: data_input(w.dataset),
    output:
        metrics="results/{stage}/{arch_id}/{dataset}/seed{seed}/metrics.json",
    params:
        out=lambda w, output: os.path.dirname(output.metrics),
        genotype=genotype_of,
        recipe=recipe_of,
        inputs=lambda w: jobs.as_rule_params(STUDY.train_inputs(
            jobs.genotype_content(genotype_of(w)), w.dataset, recipe_of(w), int(w.seed))),
    log:
        "logs/{stage}/{arch_id}/{dataset}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/{stage}/{arch_id}/{dataset}/seed{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
        stage="|".join(layout.STAGES),
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
