"""PR-DARTS: how far a child made by inserting a layer computes from its parent, as the relative output
change ||child(x) - parent(x)|| / ||parent(x)|| on CPU over 40 parents (four conv shapes, stride 1 and 2,
five seeds; the parents' BatchNorm statistics moved by three batches first). The inserted layer starts as an
identity (the authors' make_identity), so the change is what the leading ReLU does."""
import torch
from nasflow.space.morphisms import morph
from nasflow.catalog.ops import OpSpec
from nasflow.space.ops import build_op

PARENTS = [OpSpec("conv", k=3, dil=1, c_mul=()), OpSpec("conv", k=3, dil=1, c_mul=(1,)),
           OpSpec("conv", k=5, dil=2, c_mul=(2, 1)), OpSpec("conv", k=1, dil=1, c_mul=(1, 3))]
torch.set_num_threads(1)
for mode in ("train", "eval"):
    values = []
    for spec in PARENTS:
        for stride in (1, 2):
            for seed in range(5):
                torch.manual_seed(seed)
                parent = build_op(spec, 16, stride, affine=False).train()
                with torch.no_grad():
                    for _ in range(3):  # BN statistics that are not the initial ones
                        parent(torch.randn(32, 16, 16, 16))
                child = morph("insert_layer", spec, parent).module
                parent.train(mode == "train"); child.train(mode == "train")
                x = torch.randn(32, 16, 16, 16)
                with torch.no_grad():
                    p, c = parent(x), child(x)
                values.append(float((c - p).norm() / p.norm()))
    print(f"{mode}: mean relative change {sum(values) / len(values):.3f} over {len(values)} parents "
          f"(min {min(values):.3f}, max {max(values):.3f})")
