#!/bin/sh
# One machine of a sweep shared through PostgreSQL: every worker and the finalizer run this,
# in a container (compose.yaml, kubernetes.yaml) or on a plain machine with faqtune installed
# (`pip install -e '.[postgres]'`). The README's "Workers on several machines" explains it.
#
#   OPTUNA_STORAGE       postgresql://user@host/optuna: the study and the claim lock
#   MLFLOW_TRACKING_URI  http://mlflow:5000: runs, artifacts (through the server), registry
#   FAQTUNE_ROLE         worker: run trials until sweep.n_trials are done;
#                        finalize: the same, then retrain, test and register the chosen trial
#   FAQTUNE_OVERRIDES    the sweep's Hydra overrides, the same on every machine (separated by
#                        spaces; the data must be the same too: a machine whose prepared data
#                        hash differs stops before any trial)
#   PGPASSWORD           the database password, read by the PostgreSQL driver (never put it
#                        in a URL or on a command line)
set -eu
case "${FAQTUNE_ROLE:-worker}" in
  worker) finalize=false ;;
  finalize) finalize=true ;;
  *) echo "deploy/sweep.sh: FAQTUNE_ROLE=${FAQTUNE_ROLE}; expected worker or finalize" >&2
     exit 2 ;;
esac
if [ -z "${OPTUNA_STORAGE:-}" ]; then
  echo "deploy/sweep.sh: OPTUNA_STORAGE is not set; expected the study's PostgreSQL URL" \
    "(postgresql://user@host/optuna)" >&2
  exit 2
fi
if [ -z "${MLFLOW_TRACKING_URI:-}" ]; then
  echo "deploy/sweep.sh: MLFLOW_TRACKING_URI is not set; expected the MLflow server's URL" \
    "(http://mlflow:5000)" >&2
  exit 2
fi
# one worker process per machine (a pod, a container): scale with machines, not processes
# shellcheck disable=SC2086  # the overrides are meant to split into arguments
exec python -m faqtune.sweep "backend.storage=${OPTUNA_STORAGE}" \
  "tracking.uri=${MLFLOW_TRACKING_URI}" backend.n_workers=1 "sweep.finalize=${finalize}" \
  ${FAQTUNE_OVERRIDES:-}
