"""/openapi.json is a valid OpenAPI document (generated clients depend on it)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from mediaplane.app import create_app
from mediaplane.config import Settings


def test_openapi_json_validates(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, admin_token="t"))
    spec = TestClient(app).get("/openapi.json").json()
    validate(spec)  # raises with the first error
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    segment = spec["paths"]["/play/{playback_id}/{rendition}/{name}"]
    assert segment["get"]["operationId"].endswith("_get")
    assert segment["head"]["operationId"].endswith("_head")
    options = spec["paths"]["/api/v1/uploads/{upload_id}"]["options"]
    assert {"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string"}} in (
        options["parameters"]
    )
