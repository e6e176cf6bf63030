"""A search space in HyperDrive's vocabulary, read once and used by every backend.

    choice(values)                 one of the values
    randint(upper)                 an integer in [0, upper)
    uniform(low, high)             a float in [low, high]
    quniform(low, high, q)         round(uniform(low, high) / q) * q
    loguniform(low, high)          exp(uniform(low, high))
    qloguniform(low, high, q)      round(exp(uniform(low, high)) / q) * q
    normal(mu, sigma)              a normal draw
    qnormal(mu, sigma, q)          round(normal(mu, sigma) / q) * q

In YAML each hyperparameter is one of these, e.g. `ngrams: {choice: [1, 2, 3]}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from faqtune.config import hyperparameters
from faqtune.errors import ConfigError

if TYPE_CHECKING:  # a trial's process imports Optuna; parsing and checking a space does not
    import optuna

ARITY = {"choice": None, "randint": 1, "uniform": 2, "quniform": 3, "loguniform": 2,
         "qloguniform": 3, "normal": 2, "qnormal": 3}
_UNIT = 1e-6  # keeps the normal's inverse CDF finite


@dataclass(frozen=True)
class Dimension:
    name: str
    kind: str
    args: tuple

    @property
    def is_discrete(self) -> bool:
        return self.kind in ("choice", "randint") or (
            self.kind == "quniform" and all(float(a).is_integer() for a in self.args))

    def describe(self) -> str:
        """The values this dimension draws, in the hyperparameter's own units."""
        a = self.args
        if self.kind == "choice":
            return "one of " + ", ".join(map(str, a))
        if self.kind == "randint":
            return f"an integer in 0..{int(a[0]) - 1}"
        step = f" in steps of {a[2]:g}" if self.kind.startswith("q") else ""
        if self.kind in ("uniform", "quniform"):
            return f"{a[0]:g}..{a[1]:g}{step}"
        if self.kind in ("loguniform", "qloguniform"):
            return f"{math.exp(a[0]):.4g}..{math.exp(a[1]):.4g} on a log scale{step}"
        return f"a normal draw, mean {a[0]:g}, sd {a[1]:g}{step}"

    def grid(self) -> list:
        """Every value, for grid sampling."""
        if self.kind == "choice":
            return list(self.args)
        if self.kind == "randint":
            return list(range(int(self.args[0])))
        if self.is_discrete:
            low, high, q = (int(a) for a in self.args)
            return list(range(low, high + 1, q))
        raise ConfigError(f"Grid sampling needs a discrete space, but {self.name} is "
                          f"{self.kind}{list(self.args)}; use choice, randint or an integer "
                          "quniform, or another sampler.")

    def fixed(self, value: Any) -> dict[str, Any]:
        """The Optuna params that make `suggest` return `value`; empty when this dimension
        cannot draw it (then the sampler draws it)."""
        a = self.args
        if self.kind == "choice":
            return {self.name: value} if value in a else {}
        if self.kind == "randint":
            return {self.name: int(value)} if 0 <= value < a[0] else {}
        if self.kind in ("uniform", "quniform"):
            return {self.name: value} if a[0] <= value <= a[1] else {}
        if self.kind in ("loguniform", "qloguniform"):
            inside = value > 0 and a[0] <= math.log(value) <= a[1]
            return {self.name: float(value)} if inside else {}
        unit = NormalDist(a[0], a[1]).cdf(value)
        return {f"{self.name}__quantile": unit} if _UNIT <= unit <= 1 - _UNIT else {}

    def suggest(self, trial: optuna.Trial) -> Any:
        """Draw this dimension through Optuna, with HyperDrive's meaning."""
        a = self.args
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(a))
        if self.kind == "randint":
            return trial.suggest_int(self.name, 0, int(a[0]) - 1)
        if self.kind == "uniform":
            return trial.suggest_float(self.name, a[0], a[1])
        if self.kind == "quniform":
            if self.is_discrete:
                return trial.suggest_int(self.name, int(a[0]), int(a[1]), step=int(a[2]))
            return trial.suggest_float(self.name, a[0], a[1], step=a[2])
        if self.kind in ("loguniform", "qloguniform"):
            value = trial.suggest_float(self.name, math.exp(a[0]), math.exp(a[1]), log=True)
            return _quantize(value, a[2]) if self.kind == "qloguniform" else value
        # normal: Optuna samples a uniform quantile, mapped through the inverse normal CDF
        unit = trial.suggest_float(f"{self.name}__quantile", _UNIT, 1 - _UNIT)
        value = NormalDist(a[0], a[1]).inv_cdf(unit)
        return _quantize(value, a[2]) if self.kind == "qnormal" else value


def _quantize(value: float, q: float) -> float:
    rounded = round(value / q) * q
    return int(rounded) if float(q).is_integer() else rounded


@dataclass(frozen=True)
class SearchSpace:
    model: str
    dimensions: tuple[Dimension, ...]

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {d.name: d.suggest(trial) for d in self.dimensions}

    def fixed(self, values: dict[str, Any]) -> dict[str, Any]:
        """Optuna params for a trial that draws `values` wherever the space allows."""
        return {k: v for d in self.dimensions if d.name in values
                for k, v in d.fixed(values[d.name]).items()}

    def grid(self) -> dict[str, list]:
        return {d.name: d.grid() for d in self.dimensions}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())


def _check(ok: bool, key: str, expected: str) -> None:
    if not ok:
        raise ConfigError(f"Invalid search space: sweep.space.params.{key}: {expected}.")


def parse_dimension(name: str, spec: Any) -> Dimension:
    _check(isinstance(spec, dict) and len(spec) == 1, name,
           f"expected one expression such as {{choice: [1, 2]}}, got {spec!r}")
    (kind, raw), = spec.items()
    _check(kind in ARITY, name, f"unknown expression {kind!r}; use one of {', '.join(ARITY)}")
    args = tuple(raw) if isinstance(raw, (list, tuple)) else (raw,)
    if kind == "choice":
        _check(len(args) > 0, name, "choice needs at least one value")
        return Dimension(name, kind, args)
    _check(len(args) == ARITY[kind] and all(isinstance(a, (int, float)) and
                                             not isinstance(a, bool) for a in args),
           name, f"{kind} takes {ARITY[kind]} number(s), got {list(args)}")
    if kind == "randint":
        _check(args[0] >= 1, name, f"randint(upper) needs upper >= 1, got {args[0]}")
    elif kind in ("normal", "qnormal"):
        _check(args[1] > 0, name, f"{kind} needs sigma > 0, got {args[1]}")
    else:
        _check(args[0] < args[1], name, f"{kind} needs low < high, got {list(args[:2])}")
    if kind.startswith("q"):
        _check(args[-1] > 0 and float(args[-1]).is_integer(), name,
               f"{kind} needs an integer q > 0 (as HyperDrive), got {args[-1]}")
    return Dimension(name, kind, args)


def parse_space(model: str, params: dict[str, Any]) -> SearchSpace:
    """Validate a space against the model's hyperparameters before any trial runs."""
    _check(bool(params), "(all)", "the space is empty; list at least one hyperparameter")
    known = hyperparameters(model)
    for name in params:
        _check(name in known, name, f"{model!r} has no hyperparameter {name!r}; it has "
               + ", ".join(sorted(known)))
    return SearchSpace(model, tuple(parse_dimension(n, s) for n, s in params.items()))
