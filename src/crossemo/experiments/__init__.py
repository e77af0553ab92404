"""Experiments: protocols, normalisation, the scenario runner and its executors, fit reuse, metrics,
the report, tuning."""
