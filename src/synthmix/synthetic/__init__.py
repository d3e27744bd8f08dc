"""Synthetic data sets: on-disk format, resumable parallel generation, export, filtering.

Import from the submodules (`format`, `generate`, `export`, `filter`); this package imports
nothing itself so that reading a set never pulls in torch.
"""
