"""Tuning: search spaces and the sweep backends (Optuna locally, HyperDrive on Azure ML)."""
