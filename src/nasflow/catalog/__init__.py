"""Declarations, torch-free: the search methods (catalog.methods) and the datasets (catalog.datasets) nasflow knows."""
