"""MLproject shim: `python -m faqtune.mlproject TASK "OVERRIDES"`.

MLflow passes a parameter as one shell-quoted word; Hydra wants one argument per override,
so split the string the way a shell would and run the task module.
"""

from __future__ import annotations

import runpy
import shlex
import sys

TASKS = ("main", "prepare", "train", "evaluate", "sweep", "register")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        sys.exit(f"usage: python -m faqtune.mlproject {{{'|'.join(TASKS)}}} [OVERRIDES]")
    task, overrides = sys.argv[1], " ".join(sys.argv[2:])
    sys.argv = [f"faqtune.{task}", *shlex.split(overrides)]
    runpy.run_module(f"faqtune.{task}", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
