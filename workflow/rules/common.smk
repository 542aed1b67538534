# The functions the rules call (Snakemake's linter asks that rules and functions live apart).


def datasets_used():
    from nasflow.jobs import method_settings

    names = [method_settings(PARAMS, m)["dataset"] for m in PARAMS["search"]["methods"]]
    names += [PARAMS["train"]["dataset"], *PARAMS["train"]["transfer"]["datasets"]]
    return list(dict.fromkeys(names))


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


def training_outputs(wildcards=None):
    return [f"{plan.train_dir(a, d, s)}/metrics.json" for a, d, s in plan.training_jobs(PARAMS, searched())]
