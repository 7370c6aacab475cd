"""A package's public names imported on first use (PEP 562), so that importing one of its
submodules does not load the others and what they import.

    __getattr__, __all__ = lazy.exports(__name__, {"load_classifier": "<pkg>.loading", ...})
"""

import importlib
from typing import Callable, Dict, List, Tuple


def exports(package: str, where: Dict[str, str]) -> Tuple[Callable, List[str]]:
  """(the package's __getattr__, its __all__) for names -> the modules that define them; a
  name that is itself a submodule maps to that module."""
  namespace = importlib.import_module(package).__dict__

  def getattr_(name):
    if name not in where:
      raise AttributeError(f"module {package!r} has no attribute {name!r}")
    module = importlib.import_module(where[name])
    value = module if module.__name__.endswith("." + name) else getattr(module, name)
    namespace[name] = value
    return value

  return getattr_, sorted(where)
