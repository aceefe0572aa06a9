"""The hand-written seed configs under examples/imported/ as `lbgen import`/`audit` inputs,
for the command line (`SEED_ARGS`, run from `IMPORTED`) and for the library (`seed_inputs`)."""

from __future__ import annotations

from pathlib import Path

from lbgen.importer.run import ImportInputs

IMPORTED = Path(__file__).resolve().parents[2] / "examples" / "imported"
SEED_ASSUMPTIONS = ["app.preset=uvicorn", "platform=gke", "edge.instances=10.10.0.11,10.10.0.12"]
SEED_ARGS = [
    "--nginx-http", "edge/nginx.conf", "--nginx-stream", "l4/nginx.conf",
    "--kong", "gateway/kong.yaml", "--kong-conf", "gateway/kong.conf", "--k8s", "k8s",
    *(arg for assumption in SEED_ASSUMPTIONS for arg in ("--assume", assumption)),
]


def seed_inputs() -> ImportInputs:
    """The same inputs as SEED_ARGS, relative to IMPORTED."""
    return ImportInputs(["edge/nginx.conf"], ["l4/nginx.conf"], "gateway/kong.yaml", "gateway/kong.conf",
                        ["k8s"], None, list(SEED_ASSUMPTIONS))
