"""The search methods nasflow knows, and what each declares about itself.

A method is registered once, where it is written, with `register(...)`: its name, its policy class (or
"module:Class", imported only when a search runs, so that the settings check, the CLI help and the
Snakefile read every declaration without torch), the schema of its `search.<name>` block, its history
columns, the line that describes it in table3.csv, and `settle`, which fills what depends on other
keys and refuses combinations it cannot run. The engine, the schema's method list, the CLI and the
report read this registry; nothing lists the methods by hand.

The built-in declarations are this package's modules, imported on first use; the policies they name
live in nasflow.search.policies.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

from nasflow.errors import NasflowError


def _unchanged(settings: dict, method: str) -> dict:
    return settings


@dataclass(frozen=True)
class Method:
    name: str
    policy: object                          # the SearchPolicy subclass, or "module:Class"
    describe: Callable[[dict], str]         # table3.csv's schedule column, from the resolved settings
    schema: dict = field(default_factory=dict)  # `properties` and `required` of search.<name>, beyond the common keys
    columns: tuple[str, ...] = ()           # history.csv columns beyond the engine's own
    settle: Callable[[dict, str], dict] = _unchanged
    one_level: bool = False                 # alpha and the weights descend one loss on the same batch
    settings_from: str | None = None        # its block is laid over this method's (key by key, imagenet_style: too)
    trains_supernet: bool = True            # False: a baseline that trains candidates as networks
    epochs_bound: bool = False              # `epochs` only bounds a search that stops by its own rule

    def policy_class(self):
        if isinstance(self.policy, str):
            module, _, name = self.policy.partition(":")
            return getattr(importlib.import_module(module), name)
        return self.policy


_METHODS: dict[str, Method] = {}
_builtins_loaded = False


def register(name: str, *, policy=None, **declaration):
    """Register a method. With `policy` given, registers it now; without, returns a class decorator
    (`@register("my-method", describe=...)` on the policy class)."""
    def add(policy_obj):
        if name in _METHODS and _METHODS[name].policy is not policy_obj:
            raise NasflowError(f"search method {name!r} is registered twice")
        _METHODS[name] = Method(name=name, policy=policy_obj, **declaration)
        return policy_obj

    if policy is not None:
        add(policy)
        return _METHODS[name]
    return add


def unregister(name: str) -> None:
    """For tests that register a method of their own."""
    _METHODS.pop(name, None)


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def names() -> list[str]:
    _load_builtins()
    return list(_METHODS)


def method(name: str) -> Method:
    _load_builtins()
    if name not in _METHODS:
        raise NasflowError(f"unknown search method {name!r}; available: {', '.join(_METHODS)}")
    return _METHODS[name]
