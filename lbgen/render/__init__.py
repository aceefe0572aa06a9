"""Renderers: spec → files. Pure: they return files; only the CLI writes to disk."""

from __future__ import annotations

from lbgen.errors import LbgenError
from lbgen.model.limits import MAX_OUTPUT_CHARS
from lbgen.model.spec import Spec
from lbgen.plan.hops import Plan, resolve
from lbgen.render import kong, kubernetes, nginx_http, nginx_stream, summary
from lbgen.render._base import FileTarget, RenderContext, RenderedFile, RenderedFiles, TierRenderer
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




class OutputTooLargeError(LbgenError):
    """The rendered files would exceed MAX_OUTPUT_CHARS."""


def render_spec(spec: Spec, source_name: str = "spec.yaml", plan: Plan | None = None) -> RenderedFiles:
    """Render every tier of `spec`; returns {relative POSIX path: file content}, sorted, with
    the typed target of each configuration file (`RenderedFiles.targets`).

    `plan`: the spec's resolved plan when the caller already has it (the CLI resolves it
    once per run, for the rules and the renderers)."""
    plan = plan if plan is not None else resolve(spec)
    ctx = RenderContext(spec=spec, plan=plan, source_name=source_name, env=jinja_env())
    files: dict[str, RenderedFile] = {}
    size = 0
    for renderer in RENDERERS:
        for rendered in renderer(ctx):
            if rendered.path in files:
                raise AssertionError(f"two renderers produced {rendered.path}")
            files[rendered.path] = rendered
            size += len(rendered.content)
        if size > MAX_OUTPUT_CHARS:
            raise OutputTooLargeError(
                f"the rendered files would hold more than {MAX_OUTPUT_CHARS} characters "
                f"(lbgen's output limit); nothing was written: split the spec"
            )
    return RenderedFiles(list(files.values()))


__all__ = ["MAX_OUTPUT_CHARS", "RENDERERS", "FileTarget", "OutputTooLargeError", "RenderContext",
           "RenderedFile", "RenderedFiles", "render_spec"]
