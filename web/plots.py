"""Plots rendered on the server as SVG (matplotlib's non-GUI Agg backend), cached by what they show.

Each plot's cache key is its kind plus a hash of its data, so a changed dataset or a new detection result
draws a new picture and an unchanged one is drawn once.
"""

import hashlib
import io
import json
import logging
import threading
from collections.abc import Callable

import matplotlib
from django.core.cache import cache
from django.http import HttpResponse
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

# Figures here never touch pyplot; the non-GUI backend also keeps any other matplotlib use headless.
matplotlib.use("Agg")

logger = logging.getLogger(__name__)

PLOT_CACHE_S = 7 * 24 * 60 * 60
# Browsers keep a plot an hour; private, since what a plot shows depends on who may see what.
PLOT_MAX_AGE_S = 3600
_SIZE_IN = (6.4, 3.2)
_PURE, _K40, _MUTED = "#3b6ea8", "#d9822b", "#b8b8b8"
# matplotlib's global state (fonts, the text cache) is not safe to share between threads mid-render.
_LOCK = threading.Lock()


def _svg(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    return out.getvalue()


def svg_response(svg: bytes) -> HttpResponse:
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Cache-Control"] = f"private, max-age={PLOT_MAX_AGE_S}"
    return response


def cached_svg(kind: str, data: object, draw: Callable[[Figure], None]) -> bytes:
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:32]
    key = f"plot:{kind}:{digest}"
    try:
        svg = cache.get(key)
    except Exception:  # a cache outage costs a redraw, not the page
        svg = None
    if svg is None:
        with _LOCK:
            figure = Figure(figsize=_SIZE_IN)
            draw(figure)
            svg = _svg(figure)
        try:
            cache.set(key, svg, PLOT_CACHE_S)
        except Exception:
            logger.warning("cache unavailable; plot %s not cached", kind)
    return svg


def length_histogram(*, histogram: list[int], max_length: int) -> Callable[[Figure], None]:
    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        width = (max_length + 1) / max(len(histogram), 1)
        ax.bar([i * width for i in range(len(histogram))], histogram, width=width * 0.9, align="edge", color=_PURE)
        ax.set_xlabel("sample length (tokens)")
        ax.set_ylabel("samples")
        ax.set_title("Length distribution")
        ax.spines[["top", "right"]].set_visible(False)
    return draw


def fraction_ended(*, rows: list[tuple[str, float]], highlight: str) -> Callable[[Figure], None]:
    """Share of samples ending before the cap, this dataset highlighted among the other published ones."""
    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        names = [name for name, _ in rows]
        ax.barh(names, [value for _, value in rows], color=[_PURE if n == highlight else _MUTED for n in names])
        ax.set_xlim(0, 1)
        ax.set_xlabel("fraction of samples that reached end-of-text")
        ax.invert_yaxis()
        ax.spines[["top", "right"]].set_visible(False)
    return draw


def detection_accuracy(*, rows: list[tuple[str, float | None, float | None]]) -> Callable[[Figure], None]:
    """Baseline accuracy per model size, pure sampling beside top-k 40 (50% is chance)."""
    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        positions = range(len(rows))
        ax.bar([p - 0.2 for p in positions], [r[1] or 0 for r in rows], width=0.4, color=_PURE, label="pure sampling")
        ax.bar([p + 0.2 for p in positions], [r[2] or 0 for r in rows], width=0.4, color=_K40, label="top-k 40")
        ax.axhline(0.5, color="#666", linestyle=":", linewidth=1, label="chance (50%)")
        ax.set_xticks(list(positions), [r[0] for r in rows])
        ax.set_ylim(0, 1)
        ax.set_ylabel("detection accuracy")
        # Above the axes: inside them, the legend covered the tallest (top-k 40) bars.
        ax.legend(frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3)
        ax.spines[["top", "right"]].set_visible(False)
    return draw


def loss_curve(*, curve: list[dict]) -> Callable[[Figure], None]:
    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        ax.plot([p["step"] for p in curve], [p["train_loss"] for p in curve], color=_PURE, label="train")
        val = [p for p in curve if p.get("val_loss") is not None]
        if val:
            ax.plot([p["step"] for p in val], [p["val_loss"] for p in val], color=_K40, marker="o", label="validation")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats/token)")
        ax.legend(frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
    return draw


def study_language(*, ours: list[tuple[int, float | None, float | None]],
                   gpt2: list[tuple[int, float]]) -> Callable[[Figure], None]:
    """Validation loss, and WikiText-2 perplexity beside GPT-2's, against parameters (log scale)."""
    def draw(figure: Figure) -> None:
        loss_ax, ppl_ax = figure.subplots(1, 2)
        losses = [(n, v) for n, v, _ in ours if v is not None]
        if losses:
            loss_ax.plot(*zip(*losses, strict=True), color=_PURE, marker="o")
        loss_ax.set_xscale("log")
        loss_ax.set_xlabel("parameters")
        loss_ax.set_ylabel("validation loss (nats/token)")
        perplexities = [(n, v) for n, _, v in ours if v is not None]
        if perplexities:
            ppl_ax.plot(*zip(*perplexities, strict=True), color=_PURE, marker="o", label="ours")
        ppl_ax.plot(*zip(*gpt2, strict=True), color=_MUTED, marker="s", label="GPT-2 (paper)")
        ppl_ax.set_xscale("log")
        ppl_ax.set_yscale("log")
        ppl_ax.set_xlabel("parameters")
        ppl_ax.set_ylabel("WikiText-2 perplexity (per word)")
        ppl_ax.legend(frameon=False)
        for ax in (loss_ax, ppl_ax):
            ax.xaxis.set_minor_formatter(NullFormatter())  # a decade's minor labels collide on a narrow axis
            ax.spines[["top", "right"]].set_visible(False)
        figure.subplots_adjust(wspace=0.4)
    return draw


def study_detection(*, ours: dict[str, list[tuple[int, float, float | None, float | None]]],
                    gpt2: dict[str, list[tuple[int, float]]]) -> Callable[[Figure], None]:
    """Detection accuracy against parameters (log scale), with 95% intervals, and GPT-2's published points."""
    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        for sampling, color, label in (("pure", _PURE, "pure"), ("k40", _K40, "top-k 40")):
            points = ours.get(sampling) or []
            if points:
                xs = [p[0] for p in points]
                ys = [p[1] for p in points]
                errors = [[max(0.0, y - (low if low is not None else y)) for _, y, low, _ in points],
                          [max(0.0, (high if high is not None else y) - y) for _, y, _, high in points]]
                ax.errorbar(xs, ys, yerr=errors, color=color, marker="o", capsize=3, label=f"ours, {label}")
            theirs = gpt2.get(sampling) or []
            ax.plot(*zip(*theirs, strict=True), color=color, marker="s", linestyle="--", alpha=0.6,
                    label=f"GPT-2, {label}")
        ax.axhline(0.5, color="#666", linestyle=":", linewidth=1, label="chance")
        ax.set_xscale("log")
        ax.set_ylim(0.4, 1.0)
        ax.set_xlabel("parameters")
        ax.set_ylabel("detection accuracy (test)")
        ax.legend(frameon=False, fontsize="small", loc="lower left", ncol=2)
        ax.spines[["top", "right"]].set_visible(False)
    return draw
