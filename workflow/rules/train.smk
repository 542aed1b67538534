# Retraining (every searched architecture on train.dataset) and transfer (a few cells on other datasets).

def searched(wildcards=None):
    """Every architecture the searches yielded; asking for it waits for the search checkpoints."""
    return plan.searched_architectures(
        PARAMS, lambda m, s: checkpoints.search.get(method=m, seed=s).output.archs)


def genotype_input(wildcards):
    """A searched cell's genotype file (its search must have run), or nothing for a published cell."""
    m = plan.SEARCHED_ID.match(wildcards.arch_id)
    if m and m["method"] in PARAMS["search"]["methods"]:
        checkpoints.search.get(method=m["method"], seed=m["seed"])
        return [plan.genotype_ref(wildcards.arch_id)]
    return []


rule train:
    input:
        genotype=genotype_input,
        data=f"{DATA_ROOT}/{{dataset}}.npz",
    output:
        metrics="results/train/{arch_id}/{dataset}/seed{seed}/metrics.json",
    params:
        out="results/train/{arch_id}/{dataset}/seed{seed}",
        genotype=lambda w, input: input.genotype[0] if input.genotype else plan.genotype_ref(w.arch_id),
        recipe=lambda w: plan.recipe_for(PARAMS, w.dataset),
        inputs=lambda w, input: jobs.as_rule_params(jobs.train_inputs(
            PARAMS, jobs.genotype_content(input.genotype[0] if input.genotype else plan.genotype_ref(w.arch_id)),
            w.dataset, plan.recipe_for(PARAMS, w.dataset), int(w.seed))),
    log:
        "logs/train/{arch_id}/{dataset}/seed{seed}.log",
    wildcard_constraints:
        seed=r"\d+",
    threads: 1
    resources:
        gpu=1,
    shell:
        "{NASFLOW} train --genotype {params.genotype} --arch-id {wildcards.arch_id} --dataset {wildcards.dataset} "
        "--recipe {params.recipe} --seed {wildcards.seed} {SETTINGS} --out {params.out} --resume --replace-stale "
        "> {log} 2>&1"


def training_outputs(wildcards=None):
    return [f"{plan.train_dir(a, d, s)}/metrics.json" for a, d, s in plan.training_jobs(PARAMS, searched())]


rule all_trainings:
    input:
        training_outputs,
