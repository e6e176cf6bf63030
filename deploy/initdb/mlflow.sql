-- The MLflow server's backend store, beside the Optuna study's database (POSTGRES_DB).
CREATE DATABASE mlflow;
