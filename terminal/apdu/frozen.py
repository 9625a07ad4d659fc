"""A faster ``__init__`` for the frozen, slotted dataclasses a tap builds by the dozen.

The generated ``__init__`` of a frozen dataclass stores each field through
``object.__setattr__``; storing through the slot's own descriptor does the same thing in
about half the time. Fields, defaults, ``__post_init__`` and immutability are unchanged.
A field with ``init=False`` (a cache) starts as its default.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

C = TypeVar("C", bound=type)


def quick_init(cls: C) -> C:
    """Give a frozen slots dataclass an ``__init__`` that stores through its slots."""
    params, body, names = [], [], {}
    for f in dataclasses.fields(cls):
        if f.kw_only or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: only plain fields are supported")
        names[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        if not f.init:
            if f.default is dataclasses.MISSING:
                raise TypeError(f"{cls.__name__}.{f.name}: a field left out needs a default")
            names[f"_default_{f.name}"] = f.default
            body.append(f"_set_{f.name}(self, _default_{f.name})")
            continue
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            names[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        body.append(f"_set_{f.name}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n    " + "\n    ".join(body)
    exec(source, names)
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]
    return cls


def unchecked_new(cls: type, *names: str) -> object:
    """A function ``(*values) -> instance`` that stores ``values`` in the slots ``names`` of a
    new ``cls`` and runs no ``__post_init__``: for values the caller has already checked
    (a command filled from a checked template). Slots not named are left unset."""
    env: dict[str, object] = {"new": object.__new__, "cls": cls}
    body = []
    for name in names:
        env[f"_set_{name}"] = getattr(cls, name).__set__
        body.append(f"_set_{name}(self, {name})")
    source = (
        f"def unchecked({', '.join(names)}):\n    self = new(cls)\n    "
        + "\n    ".join(body)
        + "\n    return self"
    )
    exec(source, env)
    return env["unchecked"]
