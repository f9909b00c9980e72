"""deploy/: the Kubernetes manifests render (base and overlay) into objects the Kubernetes schemas accept.

No kustomize binary here: `render` does the part of kustomize these manifests use — resources
(files and directories), `namespace`, `images`, `labels`, and patches merged by kind and name
(strategic-merge style: lists of named items merge by name) — and `kubernetes-validate` checks
every object against the Kubernetes OpenAPI schemas, strictly (unknown fields fail).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import kubernetes_validate
import pytest
import yaml

from services.runtime import CALLS_ENV, CONTROL_ENV

DEPLOY: Final = Path(__file__).resolve().parent.parent / "deploy"
KUBERNETES_VERSION: Final = "1.33.0"
KUSTOMIZATIONS: Final = ("base", "overlays/example")

Obj = dict[str, Any]


def _merge(into: Any, patch: Any) -> Any:
    if isinstance(into, dict) and isinstance(patch, dict):
        merged = dict(into)
        for key, value in patch.items():
            merged[key] = _merge(into[key], value) if key in into else value
        return merged
    if isinstance(into, list) and isinstance(patch, list) and all("name" in i for i in [*into, *patch]):
        by_name = {item["name"]: item for item in into}
        for item in patch:
            by_name[item["name"]] = _merge(by_name[item["name"]], item) if item["name"] in by_name else item
        return list(by_name.values())
    return patch


def _key(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _set_images(node: Any, images: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str) and value in images:
                node[key] = images[value]
            else:
                _set_images(value, images)
    elif isinstance(node, list):
        for item in node:
            _set_images(item, images)


def render(directory: Path) -> list[Obj]:
    """What `kustomize build directory` would print, for the features deploy/ uses."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert spec["kind"] == "Kustomization"
    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        if path.is_dir():
            objects += render(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    by_key = {_key(obj): obj for obj in objects}
    assert len(by_key) == len(objects), "two objects of one kind share a name"
    for patch in spec.get("patches", []):
        for doc in yaml.safe_load_all((directory / patch["path"]).read_text()):
            assert _key(doc) in by_key, f"{patch['path']} patches {_key(doc)}, which is not rendered"
            by_key[_key(doc)] = _merge(by_key[_key(doc)], doc)
    rendered = list(by_key.values())
    for labels in spec.get("labels", []):
        for obj in rendered:
            obj["metadata"].setdefault("labels", {}).update(labels["pairs"])
    if namespace := spec.get("namespace"):
        for obj in rendered:
            if obj["kind"] != "Namespace":
                obj["metadata"]["namespace"] = namespace
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in spec.get("images", [])}
    _set_images(rendered, images)
    return rendered


def _env(container: Obj) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_rendered_object_is_valid_against_the_kubernetes_schemas(kustomization: str) -> None:
    objects = render(DEPLOY / kustomization)
    assert {kind for kind, _ in map(_key, objects)} >= {"Deployment", "StatefulSet", "Service", "Lease"}
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{kustomization}: {_key(obj)}: {exc.message} at {list(exc.path)}")


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_supervisor_lists_every_gateway_replica_and_all_dial_its_service(kustomization: str) -> None:
    objects = {_key(obj): obj for obj in render(DEPLOY / kustomization)}
    gateways = objects["StatefulSet", "mcpproxy-gateway"]
    supervisor = objects["Deployment", "mcpproxy-supervisor"]
    (sup_container,) = supervisor["spec"]["template"]["spec"]["containers"]
    (gw_container,) = gateways["spec"]["template"]["spec"]["containers"]
    service, headless = gateways["spec"]["serviceName"], gateways["metadata"]["name"]
    replicas = gateways["spec"]["replicas"]
    expected = [f"tcp://{headless}-{i}.{service}:7002" for i in range(replicas)]
    assert _env(sup_container)[CALLS_ENV].split(",") == expected
    control = _env(sup_container)[CONTROL_ENV]
    assert _env(gw_container)[CONTROL_ENV] == control
    assert ("Service", control.removeprefix("tcp://").split(":")[0]) in objects
    assert ("Service", service) in objects
    assert supervisor["spec"]["replicas"] == 1 and supervisor["spec"]["strategy"]["type"] == "Recreate"
    if kustomization != "base":  # the overlay names a real image
        assert all(":" in c["image"] for c in (sup_container, gw_container))
