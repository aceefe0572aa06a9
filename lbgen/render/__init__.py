"""Renderers: spec → files. Pure: they return files; only the CLI writes to disk."""

from __future__ import annotations

from lbgen.budget import resolve_budget
from lbgen.model.spec import Spec
from lbgen.render import kong, kubernetes, nginx_http, nginx_stream, summary
from lbgen.render._base import RenderContext, RenderedFile, TierRenderer
from lbgen.render._env import jinja_env

# One entry per output family, in the order files are produced. Each renderer decides
# from the spec whether it has anything to emit (e.g. no Kong tier → no Kong files).
RENDERERS: tuple[TierRenderer, ...] = (
    nginx_http.render,
    nginx_stream.render,
    kong.render,
    kubernetes.render,
    summary.render,
)


def render_spec(spec: Spec, source_name: str = "spec.yaml") -> dict[str, str]:
    """Render every tier of `spec`; returns {relative POSIX path: file content}, sorted."""
    ctx = RenderContext(spec=spec, budget=resolve_budget(spec), source_name=source_name, env=jinja_env())
    files: dict[str, str] = {}
    for renderer in RENDERERS:
        for rendered in renderer(ctx):
            if rendered.path in files:
                raise AssertionError(f"two renderers produced {rendered.path}")
            files[rendered.path] = rendered.content
    return dict(sorted(files.items()))


__all__ = ["RENDERERS", "RenderContext", "RenderedFile", "render_spec"]
