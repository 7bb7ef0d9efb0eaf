"""The one table of method names, and the exact configuration round trip.

Every place that names a method (``opsplit train --method``, the step-size
study, rate tables, checkpoints) uses this table; a new method is registered
here once.
"""

from __future__ import annotations

import dataclasses

from ..problems import Inclusion
from ._base import SplittingMethod
from .admm import ADMM
from .anderson import Anderson
from .chambolle_pock import ChambollePock
from .condat_vu import CondatVu
from .davis_yin import DavisYin
from .douglas_rachford import DouglasRachford
from .fista import FISTA
from .forward_backward import ForwardBackward
from .krasnoselskii_mann import KrasnoselskiiMann
from .peaceman_rachford import PeacemanRachford
from .tseng import Tseng
from .working_set import WorkingSet

__all__ = ["METHODS", "WRAPPERS", "method_name", "method_config", "method_from_config",
           "method_from_name", "inclusion_methods"]

#: Short names and the method classes they stand for.
METHODS: dict[str, type[SplittingMethod]] = {
    "fb": ForwardBackward,
    "pr": PeacemanRachford,
    "dr": DouglasRachford,
    "dy": DavisYin,
    "tseng": Tseng,
    "km": KrasnoselskiiMann,
    "fista": FISTA,
    "cp": ChambollePock,
    "cv": CondatVu,
    "admm": ADMM,
}

#: Methods built around another method (its configuration nested in theirs); apart
#: from METHODS, whose every entry can be built from a step alone.
WRAPPERS: dict[str, type[SplittingMethod]] = {
    "anderson": Anderson,
    "ws": WorkingSet,
}

#: Hyperparameters added after configurations of a method were first stored
#: (checkpoints), with the value an older configuration meant: only these may
#: be absent from a stored configuration.
ADDED_FIELDS: dict[str, dict[str, object]] = {
    "fb": {"step_rule": "fixed"},
}


def _lookup(name) -> type[SplittingMethod]:
    if not isinstance(name, str):
        raise TypeError(f"method name must be a string, got {type(name).__name__}")
    key = name.lower()
    for short, cls in {**METHODS, **WRAPPERS}.items():
        if key in (short, cls.__name__.lower()):
            return cls
    valid = ", ".join(f"{k!r} ({c.__name__})" for k, c in {**METHODS, **WRAPPERS}.items())
    raise ValueError(f"unknown method {name!r}; valid names are {valid}")


def inclusion_methods(operators: int = 2) -> tuple[str, ...]:
    """The short names of the registered methods that split inclusions of
    ``operators`` operators (``requires`` of that length), in registry order:
    what a step study runs by default.

    Examples
    --------
    >>> from opsplit.splitting import inclusion_methods
    >>> inclusion_methods(3)
    ('dy',)
    """
    return tuple(name for name, cls in METHODS.items()
                 if Inclusion in cls.problem_types and len(cls.requires) == operators)


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
    for short, registered in {**METHODS, **WRAPPERS}.items():
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
    for field in _config_fields(type(method)):
        value = getattr(method, field.name)
        if isinstance(value, SplittingMethod):  # a wrapped method (Anderson's)
            config[field.name] = method_config(value)
            continue
        if callable(value):
            raise TypeError(
                f"{type(method).__name__}'s {field.name} is a callable, which a configuration "
                "cannot hold: give it to the problem instead (e.g. ops.FixedPoint(T))"
            )
        config[field.name] = value
    return config


def method_from_config(config: dict) -> SplittingMethod:
    """The method that :func:`method_config` described, exactly.

    A missing name, an unknown name, a missing hyperparameter or an unknown
    one is a ``ValueError``: a stored configuration never falls back to a
    default, except for a hyperparameter added after configurations were
    first stored (:data:`ADDED_FIELDS`), which takes the value older
    configurations meant (``{'name': 'fb', 'step': 0.5}`` is forward–backward
    with a fixed step).

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
    given = {**ADDED_FIELDS.get(method_name(cls), {}),
             **{k: method_from_config(v) if isinstance(v, dict) else v
                for k, v in config.items() if k != "name"}}
    fields = {f.name for f in _config_fields(cls)}
    missing, unknown = sorted(fields - set(given)), sorted(set(given) - fields)
    if missing or unknown:
        raise ValueError(
            f"method config for {cls.__name__} is not exact: missing {missing}, unknown {unknown}"
        )
    return cls(**given)


def _config_fields(cls) -> list:
    """The fields a configuration holds: all but those another field determines
    (``metadata={"derived": True}``, e.g. :class:`Anderson`'s ``step``, its method's)."""
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("derived", False)]
