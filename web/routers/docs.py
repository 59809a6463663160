"""/api/docs: the OpenAPI schema as one plain page, so the docs work on a LAN with no internet
(the usual Swagger UI loads its scripts from a CDN)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["docs"])
METHODS = ("get", "post", "put", "patch", "delete")


def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_schema_name(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(map(str, schema["enum"]))
    return str(schema.get("type", "any"))


def _operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    ops = []
    for path, item in spec["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            body = op.get("requestBody", {}).get("content", {})
            ops.append({
                "method": method.upper(), "path": path, "summary": op.get("summary", ""),
                "description": op.get("description", ""),
                "params": [{"name": p["name"], "in": p["in"], "required": p.get("required", False),
                            "type": _schema_name(p.get("schema", {})), "description": p.get("description", "")}
                           for p in op.get("parameters", [])],
                "body": ", ".join(f"{ct}: {_schema_name(c.get('schema', {}))}" for ct, c in body.items()),
                "responses": [{"code": code, "description": r.get("description", ""),
                               "types": ", ".join(f"{ct}: {_schema_name(c.get('schema', {}))}" for ct, c in r.get("content", {}).items())}
                              for code, r in op.get("responses", {}).items()],
            })
    return ops


@router.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
def api_docs(request: Request) -> HTMLResponse:
    spec = request.app.openapi()
    models = {name: [{"name": k, "type": _schema_name(v), "required": k in s.get("required", [])}
                     for k, v in s.get("properties", {}).items()]
              for name, s in sorted(spec.get("components", {}).get("schemas", {}).items())}
    return request.app.state.templates.TemplateResponse(
        request, "docs.html", {"info": spec["info"], "operations": _operations(spec), "models": models})
