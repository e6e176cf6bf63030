"""What makes two runs of a sweep comparable, so a resume never mixes different sweeps."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from faqtune.config import FaqtuneConfig, encoder_identity
from faqtune.tuning.space import SearchSpace

# Model settings that change speed only: a resume may change them
SPEED_SETTINGS = {"n_jobs"}


def sweep_identity(conf: FaqtuneConfig, space: SearchSpace, data_hash: str) -> dict[str, str]:
    """The settings a sweep's trials must share, each as a comparable string."""
    model = {k: v for k, v in dataclasses.asdict(conf.model).items()
             if k not in space.names and k not in SPEED_SETTINGS}
    if model.get("encoder") == "none":  # as sweeps from before encoders stored it
        model = {k: v for k, v in model.items() if not k.startswith("encoder")}
    elif "encoder" in model:  # a folder's path says nothing of the files in it
        model["encoder_identity"] = encoder_identity(conf.model)
    training = conf.training
    return {
        "data": data_hash,
        "model": json.dumps(model, sort_keys=True),
        "space": json.dumps(conf.sweep.space.params, sort_keys=True, default=str),
        "sampler": conf.sweep.sampler,
        "seed": str(conf.sweep.seed),
        "metric": conf.sweep.metric,
        "training": json.dumps({"period": training.period,
                                "early_stopping_periods": training.early_stopping_periods,
                                "early_stopping_metric": training.early_stopping_metric},
                               sort_keys=True),
        # absent at one fold, as sweeps from before folds stored it
        **({"folds": str(conf.sweep.folds)} if conf.sweep.folds > 1 else {}),
    }


def fingerprint(identity: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def differences(stored: dict[str, str], current: dict[str, str]) -> list[str]:
    """Readable differences, e.g. `model.estimators 300 -> 60`, `data abc123 -> def456`."""
    found = []
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key), current.get(key)
        if old == new:
            continue
        if key in ("model", "space", "training") and old and new:
            old_map, new_map = json.loads(old), json.loads(new)
            for name in sorted(set(old_map) | set(new_map)):
                if old_map.get(name) != new_map.get(name):
                    found.append(f"{'sweep.space.params' if key == 'space' else key}.{name} "
                                 f"{old_map.get(name, '(unset)')} -> "
                                 f"{new_map.get(name, '(unset)')}")
        else:
            short = (lambda v: v[:12] if v else "(unset)") if key == "data" else \
                (lambda v: v or "(unset)")
            label = {"data": "prepared data", "sampler": "sweep.sampler", "seed": "sweep.seed",
                     "metric": "sweep.metric", "folds": "sweep.folds"}.get(key, key)
            found.append(f"{label} {short(old)} -> {short(new)}")
    return found
