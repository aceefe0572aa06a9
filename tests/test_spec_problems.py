"""One post-validation hook: `Spec.problems()` gathers the name, placement and refusal
problems, and the loader reports them all, located, in one error."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from lbgen.errors import InputError
from lbgen.io.loader import format_path, load_spec_data
from lbgen.model.spec import Spec
from tests.conftest import REPO


def _seed() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "examples" / "seed.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _broken() -> dict[str, Any]:
    data = _seed()
    l4 = next(t for t in data["tiers"] if t["kind"] == "nginx_stream")
    l4["grpc_listen_port"] = 9000  # a refusal: no gRPC service to relay
    data["services"][0]["route"]["paths"] *= 2  # a name problem: a route listed twice
    return data


def test_problems_gathers_every_kind_with_its_path() -> None:
    spec = Spec.model_validate(_broken())
    paths = sorted(format_path(p.path) for p in spec.problems())
    assert "tiers[1].grpc_listen_port" in paths
    assert any(path.startswith("services[0].route") for path in paths)
    assert spec.problems() == [*_names(spec), *spec.placement_problems(), *spec.refusals()]


def _names(spec: Spec) -> list[Any]:
    from lbgen.model.naming import name_problems

    return list(name_problems(spec))


def test_the_loader_reports_all_of_them_at_once() -> None:
    with pytest.raises(InputError) as caught:
        load_spec_data(_broken())
    paths = [p.path for p in caught.value.problems]
    assert "tiers[1].grpc_listen_port" in paths
    assert any(str(path).startswith("services[0].route") for path in paths)


def test_a_valid_spec_has_no_problems() -> None:
    assert Spec.model_validate(_seed()).problems() == []
