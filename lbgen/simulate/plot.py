"""`lbgen simulate --plot FILE.svg|png`: the per-pod shares as bars (matplotlib, imported only here).

One panel per simulated spec (two with `--compare`), pods busiest first, each bar the median
share of requests with its 5-95 % band as an error bar and the fair share as a line. The
file is deterministic for a given result: no date in the metadata, fixed SVG ids, and text
kept as text (so the pod labels can be read from the SVG).
"""

from __future__ import annotations

from pathlib import Path

from lbgen.simulate import Result

FORMATS = (".svg", ".png")


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write(results: list[Result], path: Path) -> None:
    """Write the plot of `results` to `path` (its suffix picks SVG or PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt

    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "lbgen", "font.size": 9}):
        fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 3.4), squeeze=False,
                                 sharey=True)
        for ax, r in zip(axes[0], results, strict=True):
            medians = [b.median * 100 for b in r.shares]
            low = [max(0.0, (b.median - b.p5) * 100) for b in r.shares]
            high = [max(0.0, (b.p95 - b.median) * 100) for b in r.shares]
            labels = [f"pod {i + 1}" for i in range(r.pods)]
            ax.bar(labels, medians, yerr=[low, high], capsize=3, color="#4477aa", ecolor="#222222")
            ax.axhline(100 / r.pods, color="#cc6677", linewidth=1, linestyle="--", label="fair share")
            ax.set_title(f"{r.spec}: {r.service}\nmax/mean {r.max_mean.median:.2f}  CV {r.cv.median:.2f}")
            ax.set_xlabel("pods, busiest first (median, 5-95 % band)")
            ax.tick_params(axis="x", labelrotation=90 if r.pods > 12 else 0)
            ax.legend(loc="upper right", frameon=False)
        top = max(b.p95 for r in results for b in r.shares) * 100
        axes[0][0].set_ylim(0, max(top, max(100 / r.pods for r in results)) * 1.25)  # room for the legend
        axes[0][0].set_ylabel("share of requests (%)")
        fig.tight_layout()
        metadata: dict[str, str | None] = {"Date": None} if path.suffix == ".svg" else {"Software": None}
        fig.savefig(path, format=path.suffix[1:], metadata=metadata)
        plt.close(fig)


__all__ = ["FORMATS", "available", "write"]
