"""What each HyperDrive child runs: `--name value` arguments back into Hydra overrides.

Run as a script on the cluster (PYTHONPATH=src), e.g.
`python src/faqtune/hyperdrive_child.py model=matcher ... --data-prepared /mnt/x --ngrams 2`.
"""

from __future__ import annotations

import sys


def main() -> None:
    from faqtune import train
    from faqtune.tuning.azureml_backend import parse_child_arguments

    argv = sys.argv[1:]
    model = next((a.split("=", 1)[1] for a in argv if a.startswith("model=")), "matcher")
    sys.argv = [sys.argv[0], *parse_child_arguments(argv, model)]
    train.main()


if __name__ == "__main__":
    main()
