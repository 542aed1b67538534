"""One declaration per search method (`nasflow.search.registry.register`), free of torch: the policy
it names is imported only when a search runs. A new method is one module here, or one policy file
that registers itself and is imported before the search starts."""
