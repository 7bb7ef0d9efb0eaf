"""The one table of method names, and the exact configuration round trip.

Every place that names a method (``opsplit train --method``, the step-size
study, rate tables, checkpoints) uses this table; a new method is registered
here once.
"""

from __future__ import annotations

import dataclasses

from ._base import SplittingMethod
from .douglas_rachford import DouglasRachford
from .forward_backward import ForwardBackward
from .peaceman_rachford import PeacemanRachford

__all__ = ["METHODS", "method_name", "method_config", "method_from_config", "method_from_name"]

#: Short names and the method classes they stand for.
METHODS: dict[str, type[SplittingMethod]] = {
    "fb": ForwardBackward,
    "pr": PeacemanRachford,
    "dr": DouglasRachford,
}


def _lookup(name) -> type[SplittingMethod]:
    if not isinstance(name, str):
        raise TypeError(f"method name must be a string, got {type(name).__name__}")
    key = name.lower()
    for short, cls in METHODS.items():
        if key in (short, cls.__name__.lower()):
            return cls
    valid = ", ".join(f"{k!r} ({c.__name__})" for k, c in METHODS.items())
    raise ValueError(f"unknown method {name!r}; valid names are {valid}")


def method_name(method) -> str:
    """The short name of a method instance or class.

    Examples
    --------
    >>> import opsplit as ops
    >>> from opsplit.splitting import method_name
    >>> method_name(ops.DouglasRachford(step=0.5)), method_name(ops.ForwardBackward)
    ('dr', 'fb')
    """
    cls = method if isinstance(method, type) else type(method)
    for short, registered in METHODS.items():
        if cls is registered:
            return short
    raise TypeError(f"{cls.__name__} is not a registered splitting method")


def method_from_name(name: str, **hyperparameters) -> SplittingMethod:
    """A method from its short or class name (``"pr"``, ``"PeacemanRachford"``).

    Examples
    --------
    >>> from opsplit.splitting import method_from_name
    >>> method_from_name("dr", step=0.5, relaxation=1.5)
    DouglasRachford(step=0.5, relaxation=1.5)
    """
    return _lookup(name)(**hyperparameters)


def method_config(method: SplittingMethod) -> dict:
    """Every hyperparameter of ``method`` and its name, as a JSON-ready dict.

    Examples
    --------
    >>> import opsplit as ops
    >>> from opsplit.splitting import method_config
    >>> method_config(ops.DouglasRachford(step=0.5, relaxation=1.7))
    {'name': 'dr', 'step': 0.5, 'relaxation': 1.7}
    """
    if not isinstance(method, SplittingMethod):
        raise TypeError(f"method must be a SplittingMethod, got {type(method).__name__}")
    config = {"name": method_name(method)}
    for field in dataclasses.fields(method):
        config[field.name] = getattr(method, field.name)
    return config


def method_from_config(config: dict) -> SplittingMethod:
    """The method that :func:`method_config` described, exactly.

    A missing name, an unknown name, a missing hyperparameter or an unknown
    one is a ``ValueError``: a stored configuration never falls back to a
    default.

    Examples
    --------
    >>> from opsplit.splitting import method_from_config
    >>> method_from_config({"name": "dr", "step": 0.5, "relaxation": 1.7})
    DouglasRachford(step=0.5, relaxation=1.7)
    """
    if not isinstance(config, dict):
        raise TypeError(f"method config must be a dict, got {type(config).__name__}")
    if "name" not in config:
        raise ValueError("method config has no 'name'")
    cls = _lookup(config["name"])
    given = {k: v for k, v in config.items() if k != "name"}
    fields = {f.name for f in dataclasses.fields(cls)}
    missing, unknown = sorted(fields - set(given)), sorted(set(given) - fields)
    if missing or unknown:
        raise ValueError(
            f"method config for {cls.__name__} is not exact: missing {missing}, unknown {unknown}"
        )
    return cls(**given)
