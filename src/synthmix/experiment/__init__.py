"""The study (SPEC §5): real/synthetic mixes, the runner that executes every stage, the report."""
