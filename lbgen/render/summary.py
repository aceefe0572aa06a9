"""Renderer for summary (placeholder until implemented)."""

from __future__ import annotations

from lbgen.render._base import RenderContext, RenderedFile


def render(ctx: RenderContext) -> list[RenderedFile]:
    return []
