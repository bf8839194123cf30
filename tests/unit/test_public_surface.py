"""Each package's __all__ lists exactly what it re-exports (and everything it lists exists)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import mediaplane

#: Every package of mediaplane, found on disk: a new one is checked without being listed.
PACKAGES = sorted(
    f"mediaplane.{p.parent.name}"
    for p in Path(mediaplane.__file__).parent.glob("*/__init__.py")
    if p.parent.name != "migrations"
)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_complete(name: str) -> None:
    mod = importlib.import_module(name)
    public = {
        k
        for k, v in vars(mod).items()
        if not k.startswith("_") and getattr(v, "__module__", name).startswith(name + ".")
    }
    assert public <= set(mod.__all__), public - set(mod.__all__)
    for item in mod.__all__:
        assert hasattr(mod, item), item
