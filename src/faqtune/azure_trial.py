"""What each Azure ML trial runs: `--name value` arguments back into Hydra overrides, then
the same `train` task as everywhere else.

On the cluster (the job's code is this repository, PYTHONPATH=src):
`python -m faqtune.azure_trial model=matcher data.seed=42 ... --data-prepared /mnt/x --ngrams 2`
"""

from __future__ import annotations

import sys


def main() -> None:
    from faqtune import train
    from faqtune.tuning.azure_common import parse_trial_arguments

    argv = sys.argv[1:]
    model = next((a.split("=", 1)[1] for a in argv if a.startswith("model=")), "matcher")
    sys.argv = [sys.argv[0], *parse_trial_arguments(argv, model)]
    train.main()


if __name__ == "__main__":
    main()
