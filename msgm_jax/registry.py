"""One small explicit registry per extension point (SDEs, predictors, models, ...)."""

from typing import Callable, Dict, Generic, Iterator, Optional, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
  """A name -> object table that refuses duplicates and lists valid names on a bad lookup."""

  def __init__(self, kind: str):
    self.kind = kind
    self._items: Dict[str, T] = {}

  def register(self, name: Optional[str] = None) -> Callable[[T], T]:
    """Decorator: `@REG.register("name")` (defaults to the object's __name__)."""

    def deco(obj: T) -> T:
      self.add(name or obj.__name__, obj)
      return obj

    return deco

  def add(self, name: str, obj: T) -> None:
    if name in self._items:
      raise ValueError(f"{self.kind} {name!r} is already registered")
    self._items[name] = obj

  def get(self, name: str) -> T:
    try:
      return self._items[name]
    except KeyError:
      raise ValueError(
          f"unknown {self.kind} {name!r}; valid names: {', '.join(sorted(self._items))}"
      ) from None

  def names(self) -> list:
    return sorted(self._items)

  def __contains__(self, name: str) -> bool:
    return name in self._items

  def __iter__(self) -> Iterator[str]:
    return iter(sorted(self._items))
