"""Base class of every spec model: unknown keys are errors and models are immutable."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from lbgen.model.types import RuleCode


class StrictModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=False,
        validate_default=True,
        # Field docs are the attribute docstrings below each field; `lbgen schema` reads them
        # from the source (lbgen.model.docs) so importing the model stays cheap.
        use_attribute_docstrings=False,
        defer_build=True,
    )


class Suppression(StrictModel):
    """Silences one rule on the tier or service it is attached to."""

    rule: RuleCode
    """Rule code to silence, e.g. LB201."""
    reason: str = Field(min_length=3, max_length=500, pattern=r"^[^\x00-\x1f]+$")
    """Why this finding is accepted (mandatory: it is shown in reports)."""
    expires: dt.date | None = None
    """After this date the suppression stops working and is itself reported."""
