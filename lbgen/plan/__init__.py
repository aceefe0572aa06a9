"""The resolved plan of the path: what every hop will actually do, and why.

`resolve(spec)` computes it once per run; the renderers and the rules read it (and neither
computes an effective value or a default of its own). Submodules: `_resolved` (the one
value+origin type), `budget` (keep-alive budget across hops), `values` (timeouts, retries,
failure accounting), `topology` (who talks to whom), `hops` (the typed hop plans).
"""

from lbgen.plan._resolved import Origin, Resolved
from lbgen.plan.hops import HopPlan, Plan, Setting, resolve

__all__ = ["HopPlan", "Origin", "Plan", "Resolved", "Setting", "resolve"]
