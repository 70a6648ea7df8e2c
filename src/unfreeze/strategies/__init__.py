"""Freeze strategies behind one registry: one file per strategy (see `base.Strategy` for the questions each
answers). Every module of this package is imported here, so a new strategy file registers itself."""
import importlib
import pkgutil

from unfreeze.strategies.base import (REGISTRY, FreezePlan, Strategy, apply_freeze, count_parameters, get_strategy,
                                      register, set_train_mode, strategy_names)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "FreezePlan", "Strategy", "apply_freeze", "count_parameters", "get_strategy", "register",
           "set_train_mode", "strategy_names"]
