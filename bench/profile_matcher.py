"""Where one matcher trial spends its time: a pyinstrument profile of train + test scoring.

    pip install "pyinstrument>=5,<6"
    python bench/profile_matcher.py --originals 3000 --estimators 100
    python bench/profile_matcher.py --override model.rerank_top=0 training.dense_operand_mib=0

Uses the scale benchmark's synthetic corpus, so the profile explains its figures.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from benchmarks import MATCHER, prepared, train_and_test
from pyinstrument import Profiler

from faqtune.config import DataConfig, SyntheticConfig, TrainingConfig


def parsed(value: str, like):
    """`value` as the type of the field it overrides."""
    if isinstance(like, bool):
        return value.lower() in ("1", "true", "yes")
    return type(like)(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--originals", type=int, default=3000)
    parser.add_argument("--estimators", type=int, default=100)
    parser.add_argument("--override", nargs="*", default=[], metavar="GROUP.FIELD=VALUE",
                        help="model or training settings, e.g. model.rerank_top=0")
    args = parser.parse_args()
    cfg = DataConfig(synthetic=SyntheticConfig(originals=args.originals, dupes_median=5),
                     min_dupes=3, match=10)
    cache = tempfile.TemporaryDirectory(prefix="faqtune-profile-")
    _, path = prepared(cfg, Path(cache.name))
    settings = {"model": replace(MATCHER, estimators=args.estimators),
                "training": TrainingConfig()}
    for override in args.override:
        key, value = override.split("=", 1)
        group, field = key.split(".", 1)
        current = settings[group]
        settings[group] = replace(current, **{field: parsed(value, getattr(current, field))})
    profiler = Profiler()
    with profiler:
        result = train_and_test(settings["model"], path, None, 50, settings["training"])
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    print({k: round(v, 3) for k, v in result.items() if k.startswith("test_")})
    cache.cleanup()


if __name__ == "__main__":
    main()
