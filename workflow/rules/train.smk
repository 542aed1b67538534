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


def genotype_of(wildcards):
    """The genotype a training reads: a searched cell's file (its search has run: this job exists only
    after the search checkpoint) or a published cell's name. From the wildcards alone, not `input`:
    Snakemake leaves params that need `input` out of its check for changed params."""
    return plan.genotype_ref(wildcards.arch_id)


rule train:
    input:
        genotype=genotype_input,
        data=f"{DATA_ROOT}/{{dataset}}.npz",
    output:
        metrics="results/train/{arch_id}/{dataset}/seed{seed}/metrics.json",
    params:
        out="results/train/{arch_id}/{dataset}/seed{seed}",
        genotype=genotype_of,
        recipe=lambda w: plan.recipe_for(PARAMS, w.dataset),
        inputs=lambda w: jobs.as_rule_params(jobs.train_inputs(
            PARAMS, jobs.genotype_content(genotype_of(w)), w.dataset, plan.recipe_for(PARAMS, w.dataset), int(w.seed))),
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
