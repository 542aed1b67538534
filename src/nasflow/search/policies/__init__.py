"""One file of policy per search method (torch), on the shared supernet: what each method does at each step; their declarations are nasflow.catalog.methods."""
