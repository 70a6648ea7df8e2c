"""Tasks behind one registry: one file per task (see `base.Task` for the questions each answers). Every module
of this package is imported here, so a new task file registers itself."""
import importlib
import pkgutil

from unfreeze.tasks.base import REGISTRY, Task, get_task, inspect_data, register, task_names

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "Task", "get_task", "inspect_data", "register", "task_names"]
