"""Serving: the MLflow pyfunc FAQ matcher."""
