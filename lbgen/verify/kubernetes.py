"""Real-consumer checks for Kubernetes output.

- Every YAML document of a built-in Kubernetes kind is validated with
  ``kubernetes_validate.validate(doc, "1.36", strict=True)``: the OpenAPI schemas of
  Kubernetes 1.36, with unknown fields rejected. Kinds it has no schema for (KIC's
  KongUpstreamPolicy, Gateway API routes) are the Kong verifier's business and are skipped.
- Every top-level document that looks like a Kubernetes object must be one lbgen renders:
  an (apiVersion, kind) of RENDERED_KINDS carrying lbgen's managed-by label. Anything else
  (say, an object smuggled in through a comment) fails the check.
- A Deployment document without ``spec.selector`` is a strategic-merge patch (lbgen's
  rollout-safety patch, accepted only as a file under `patches/` and without the label, which
  it must not put on the user's Deployment): it is merged into a minimal Deployment that supplies only what the
  patch does not own (selector, template labels, an image per container) and the result is
  validated the same way, so a field the API server would reject still fails.
- The ``config.conf`` of the ``kube-system/kube-proxy`` ConfigMap is validated against
  ``<schemas>/kube-proxy/kubeproxyconfiguration-v1alpha1.json`` (JSON Schema draft 7),
  since Kubernetes publishes no schema for component configs.

One CheckResult per file and check. kubernetes-validate (22 MB of schemas) is the optional
extra ``lbgen[verify]``: without it the first check is reported as skipped, with the command
that installs it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import yaml

from lbgen.render._base import FileTarget
from lbgen.verify._base import CheckResult

KUBERNETES_VERSION = "1.36"
# PyYAML's safe loader, in C when built with libyaml (same results, much faster).
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
KUBE_PROXY_SCHEMA = Path("kube-proxy") / "kubeproxyconfiguration-v1alpha1.json"
NOT_INSTALLED = (
    "kubernetes-validate is not installed, so the Kubernetes manifests were not "
    "schema-checked: python3 -m pip install 'lbgen[verify]' (or: python3 -m pip install "
    "kubernetes-validate)"
)


def _kubernetes_validate() -> ModuleType | None:
    """The optional `kubernetes_validate` module (extra `lbgen[verify]`), None if missing."""
    try:
        module = importlib.import_module("kubernetes_validate")
        importlib.import_module("kubernetes_validate.utils")
    except ImportError:
        return None
    return module

# The built-in kinds lbgen renders (Kubernetes renderer and the KIC flavour of Kong). Matched
# by kind alone, so a built-in kind in an API version 1.36 no longer serves (policy/v1beta1
# PodDisruptionBudget) fails instead of being passed over as a custom resource.
BUILTIN_KINDS: frozenset[str] = frozenset(
    {"Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress",
     "Deployment"}
)


# Every (apiVersion, kind) lbgen renders as a top-level document, with the label it puts on
# each. Any other Kubernetes object in the output (or one without the label) did not come
# from lbgen's renderers, e.g. text smuggled in through a comment: verification fails on it.
RENDERED_KINDS: frozenset[tuple[str, str]] = frozenset({
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "Ingress"),
    ("configuration.konghq.com/v1beta1", "KongUpstreamPolicy"),
})
MANAGED_BY_LABEL = ("app.kubernetes.io/managed-by", "lbgen")


def _foreign_objects(path: str, docs: list[Any]) -> list[str]:
    """Documents of `docs` that look like Kubernetes objects lbgen does not render."""
    foreign = []
    for doc in docs:
        if not isinstance(doc, dict) or not ({"apiVersion", "kind"} & doc.keys()):
            continue
        if _is_rollout_patch(path, doc):
            continue
        metadata = doc.get("metadata")
        labels = metadata.get("labels") if isinstance(metadata, dict) else None
        key, value = MANAGED_BY_LABEL
        if (doc.get("apiVersion"), doc.get("kind")) not in RENDERED_KINDS:
            foreign.append(f"{_describe(doc)} ({doc.get('apiVersion')}) is not a kind lbgen renders")
        elif not (isinstance(labels, dict) and labels.get(key) == value):
            foreign.append(f"{_describe(doc)} lacks the label {key}: {value} lbgen puts on every object")
    return foreign


def _is_rollout_patch(path: str, doc: Mapping[str, Any]) -> bool:
    """lbgen's Deployment patch: only in its own file under `patches/`, and unlabelled, since
    merging a label into the user's Deployment would claim it for lbgen."""
    return (
        "/patches/" in f"/{path}"
        and path.endswith(".deployment.yaml")
        and doc.get("apiVersion") == "apps/v1"
        and is_deployment_patch(doc)
    )


def _check_foreign(path: str, docs: list[Any]) -> CheckResult | None:
    foreign = _foreign_objects(path, docs)
    if not foreign:
        return None
    return CheckResult(f"only lbgen's Kubernetes objects {path}", "failed", "; ".join(foreign))


def _is_builtin(doc: Mapping[str, Any]) -> bool:
    return doc.get("kind") in BUILTIN_KINDS and isinstance(doc.get("apiVersion"), str)


@contextmanager
def _cached_schema_files() -> Iterator[None]:
    """Load kubernetes-validate's schema files once per process instead of once per document.

    `validate()` re-reads and re-parses the multi-megabyte `_definitions.json` on every call
    (~17 ms); the validation itself takes well under 1 ms. Same function, same schemas: only
    the file reads are memoised, for the duration of one verify run.
    """
    module = _kubernetes_validate()
    if module is None:
        yield
        return
    kv_utils = module.utils
    original_contents = kv_utils.schema_contents
    original_versions = kv_utils.all_versions
    kv_utils.schema_contents = _cached(original_contents)
    kv_utils.all_versions = _cached(original_versions)
    try:
        yield
    finally:
        kv_utils.schema_contents = original_contents
        kv_utils.all_versions = original_versions


_CACHES: dict[Callable[..., Any], Callable[..., Any]] = {}


def _cached(function: Callable[..., Any]) -> Callable[..., Any]:
    if function not in _CACHES:
        _CACHES[function] = cache(function)
    return _CACHES[function]


def _describe(doc: Mapping[str, Any]) -> str:
    metadata = doc.get("metadata") or {}
    name = metadata.get("name", "?") if isinstance(metadata, Mapping) else "?"
    return f"{doc.get('kind')}/{name}"


def is_deployment_patch(doc: Mapping[str, Any]) -> bool:
    """A Deployment without a selector cannot be created: it is a patch of one."""
    if doc.get("kind") != "Deployment":
        return False
    spec = doc.get("spec")
    return not (isinstance(spec, Mapping) and "selector" in spec)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _minimal_deployment(patch: Mapping[str, Any]) -> dict[str, Any]:
    """The smallest Deployment the patch can apply to: what the patch does not set."""
    metadata = _mapping(patch.get("metadata"))
    name = str(metadata.get("name", "app"))
    pod = _mapping(_mapping(_mapping(patch.get("spec")).get("template")).get("spec"))
    listed = pod.get("containers")
    containers = [_mapping(c) for c in listed] if isinstance(listed, list) else [{"name": name}]
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": str(metadata.get("namespace", "default"))},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": [
                        {"name": c.get("name"), "image": "registry.example/app:1"} for c in containers
                    ]
                },
            },
        },
    }


# Strategic-merge list keys of the fields lbgen's patch touches (core/v1 PodSpec
# `patchMergeKey: name` on containers, initContainers and volumes). Other lists replace.
_MERGE_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name"}


def strategic_merge(base: Any, patch: Any, key: str = "") -> Any:
    """Strategic merge for the subset of the API lbgen patches: maps merge recursively,
    lists with a merge key merge item by item, other lists and scalars are replaced."""
    if isinstance(base, Mapping) and isinstance(patch, Mapping):
        merged = dict(base)
        for field, value in patch.items():
            merged[field] = strategic_merge(base.get(field), value, field) if field in base else value
        return merged
    merge_key = _MERGE_KEYS.get(key)
    if merge_key and isinstance(base, list) and isinstance(patch, list):
        items = [dict(item) for item in base]
        for item in patch:
            match = next((i for i, b in enumerate(items) if b.get(merge_key) == item.get(merge_key)), None)
            if match is None:
                items.append(item)
            else:
                items[match] = strategic_merge(items[match], item)
        return items
    return patch


def merged_deployment(patch: Mapping[str, Any]) -> dict[str, Any]:
    merged = strategic_merge(_minimal_deployment(patch), patch)
    assert isinstance(merged, dict)
    return merged


def _validation_message(error: Any) -> str:  # a kubernetes_validate.ValidationError
    where = ".".join(str(part) for part in error.path) or "(root)"
    return f"{where}: {error.message}"


def _check_kubernetes_documents(path: str, docs: list[Any]) -> CheckResult | None:
    builtin = [doc for doc in docs if isinstance(doc, dict) and _is_builtin(doc)]
    if not builtin:
        return None
    how = "strict, patch merged into a minimal Deployment" if any(
        is_deployment_patch(doc) for doc in builtin
    ) else "strict"
    name = f"kubernetes-validate {KUBERNETES_VERSION} ({how}) {path}"
    kubernetes_validate = _kubernetes_validate()
    if kubernetes_validate is None:
        return CheckResult(name, "skipped", NOT_INSTALLED)
    problems: list[str] = []
    for doc in builtin:
        try:
            checked = merged_deployment(doc) if is_deployment_patch(doc) else doc
            kubernetes_validate.validate(checked, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{_describe(doc)}: {_validation_message(error)}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{_describe(doc)}: {error.message}")
    if problems:
        return CheckResult(name, "failed", "; ".join(problems))
    kinds = ", ".join(_describe(doc) for doc in builtin)
    return CheckResult(name, "passed", kinds)


def _kube_proxy_configs(docs: list[Any]) -> list[str]:
    """The `config.conf` payloads of kube-system/kube-proxy ConfigMaps in `docs`."""
    found = []
    for doc in docs:
        if not (isinstance(doc, dict) and (doc.get("apiVersion"), doc.get("kind")) == ("v1", "ConfigMap")):
            continue
        metadata = doc.get("metadata")
        if not isinstance(metadata, dict) or (
            (metadata.get("namespace"), metadata.get("name")) != ("kube-system", "kube-proxy")
        ):
            continue
        data = doc.get("data")
        payload = data.get("config.conf") if isinstance(data, dict) else None
        # A missing payload is validated as "" (null), which the schema rejects: kube-proxy
        # would start without its configuration.
        found.append(payload if isinstance(payload, str) else "")
    return found


@cache
def _kube_proxy_validator(schema_path: Path) -> jsonschema.Draft7Validator:
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _check_kube_proxy(path: str, payloads: list[str], schemas_dir: Path | None) -> CheckResult:
    name = f"kube-proxy schema (KubeProxyConfiguration v1alpha1) {path}"
    if schemas_dir is None:
        return CheckResult(
            name, "skipped", f"pass --schemas DIR (with {KUBE_PROXY_SCHEMA.as_posix()}) to run it"
        )
    schema_path = schemas_dir / KUBE_PROXY_SCHEMA
    if not schema_path.is_file():
        return CheckResult(name, "skipped", f"{schema_path} not found")
    validator = _kube_proxy_validator(schema_path)
    problems: list[str] = []
    for payload in payloads:
        try:
            config = yaml.load(payload, Loader=_LOADER)
        except yaml.YAMLError as error:
            problems.append(f"config.conf is not YAML: {error}")
            continue
        for issue in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
            where = ".".join(str(part) for part in issue.path) or "(root)"
            problems.append(f"config.conf {where}: {issue.message}")
    if problems:
        return CheckResult(name, "failed", "; ".join(problems))
    return CheckResult(name, "passed", "config.conf")


def verify(
    files: Mapping[str, str], schemas_dir: Path | None, targets: Mapping[str, FileTarget] | None = None
) -> list[CheckResult]:
    results: list[CheckResult] = []
    with _cached_schema_files():
        for path in sorted(files):
            if not path.endswith((".yaml", ".yml")):
                continue
            try:
                docs = [doc for doc in yaml.load_all(files[path], Loader=_LOADER) if doc is not None]
            except yaml.YAMLError as error:
                results.append(CheckResult(f"kubernetes-validate {KUBERNETES_VERSION} (strict) {path}",
                                           "failed", f"not YAML: {error}"))
                continue
            for checked in (_check_foreign(path, docs), _check_kubernetes_documents(path, docs)):
                if checked is not None:
                    results.append(checked)
            payloads = _kube_proxy_configs(docs)
            if payloads:
                results.append(_check_kube_proxy(path, payloads, schemas_dir))
    for path in sorted(files):
        if path.endswith("/KUBE-PROXY.md"):
            # GKE, or a self-managed cluster whose kube-proxy lbgen leaves alone: no
            # KubeProxyConfiguration is rendered, so there is nothing to validate; say so
            # instead of leaving the check out silently.
            results.append(CheckResult(
                f"kube-proxy schema (KubeProxyConfiguration v1alpha1) {path}", "skipped",
                "no kube-proxy ConfigMap is rendered (GKE manages kube-proxy or has none, or "
                "the spec gives no complete kube_proxy settings)",
            ))
    return results
