"""Each package's __all__ lists exactly what it re-exports (and everything it lists exists)."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "mediaplane.accounts",
    "mediaplane.catalog",
    "mediaplane.db",
    "mediaplane.delivery",
    "mediaplane.events",
    "mediaplane.ingest",
    "mediaplane.intake",
    "mediaplane.jobs",
    "mediaplane.library",
    "mediaplane.live",
    "mediaplane.media",
    "mediaplane.ops",
    "mediaplane.pipeline",
    "mediaplane.storage",
    "mediaplane.web",
]


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
