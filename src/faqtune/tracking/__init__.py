"""Tracking: MLflow runs, what each run logs, and the model registry."""
