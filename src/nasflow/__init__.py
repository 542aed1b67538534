"""nasflow: differentiable neural architecture search as a reproducible pipeline."""

__version__ = "0.1.0"
