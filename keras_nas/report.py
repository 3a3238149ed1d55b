"""One page about a finished search: figures, trial table, best model, cell diagnostics.

`write_report(results_dir)` reads `results_dir/summary.json` (and, when present,
`best_model.keras`, `*.tflite` files and latency measurements), saves the figures next to
the page and writes it as Markdown or HTML. `keras-nas report RESULTS_DIR` calls it.

```python
from keras_nas.report import write_report
path = write_report("results/my_search", format="html")
```
"""

import html
import math
import os
from pathlib import Path

from keras_nas import analysis, plots
from keras_nas.progress import ProgressPrinter, format_duration  # noqa: F401  (re-exported)

FORMATS = ("markdown", "html")
_FIGURE_CAPTIONS = {
    "history": "Search history: each trial's objective and the best so far, by trial and by wall time.",
    "pareto": "Accuracy against latency / size: the non-dominated front in green, the chosen model starred.",
    "controller": "REINFORCE controller: reward and baseline, entropy, and each decision's probabilities.",
    "cell": "The found cell (ops on the edges; `none` edges left out).",
    "cell_shapes": "Width and depth of every trial's cell (Shu et al., ICLR 2020), colored by objective.",
    "macro": "The found network: stages of MBConv blocks.",
}

WIDTH_DEPTH_NOTE = (
    "Shu, Wang and Cai (ICLR 2020) measure a cell by its *width* (the total width, in units "
    "of the node channels c, of the intermediate nodes fed by the cell inputs) and its "
    "*depth* (connections on the longest input-to-output path). The normal cells published "
    "by NASNet, AmoebaNet, ENAS, DARTS and SNAS are wide and shallow. The paper shows why: "
    "wide, shallow cells converge fastest (smoother loss landscape, better-conditioned "
    "gradients), and a search that ranks candidates after short or weight-shared training "
    "rewards fast convergence. They do not generalise better once fully trained; deeper, "
    "narrower cells of the same space often match or beat them. A found cell that sits with "
    "the published ones is what the search bias predicts; consider retraining a deeper "
    "candidate from the trial table before concluding that width is what your task needs."
)


# ---------------------------------------------------------------------------------------
# A tiny document model rendered to Markdown or HTML
# ---------------------------------------------------------------------------------------
class _Doc:
    def __init__(self):
        self.blocks = []

    def heading(self, text, level=2):
        self.blocks.append(("heading", level, text))

    def para(self, text):
        self.blocks.append(("para", text))

    def table(self, header, rows):
        self.blocks.append(("table", header, rows))

    def image(self, path, caption):
        self.blocks.append(("image", path, caption))

    def code(self, text):
        self.blocks.append(("code", text))

    def bullets(self, items):
        self.blocks.append(("bullets", items))


def _md_cell(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def _render_markdown(doc):
    out = []
    for block in doc.blocks:
        kind = block[0]
        if kind == "heading":
            out.append("#" * block[1] + " " + block[2])
        elif kind == "para":
            out.append(block[1])
        elif kind == "bullets":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            header, rows = block[1], block[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |"]
            lines.append("|" + "|".join("---" for _ in header) + "|")
            for row in rows:
                lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
            out.append("\n".join(lines))
        elif kind == "image":
            out.append(f"![{block[2]}]({block[1]})\n\n*{block[2]}*")
        elif kind == "code":
            out.append("```\n" + block[1].rstrip() + "\n```")
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1150px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #4C72B0; padding-bottom: .2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; }
th { background: #f0f3f8; }
tr:nth-child(even) td { background: #fafafa; }
td code { font-size: 0.95em; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-style: italic; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 0.8em; }
"""


def _inline_html(text):
    """Escapes text, keeping `code`, *em* and **strong** marks of the Markdown form."""
    import re

    parts = re.split(r"(`[^`]*`)", str(text))
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            esc = html.escape(part)
            esc = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", esc)
            esc = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", esc)
            out.append(esc)
    return "".join(out)


def _render_html(doc, title):
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    for block in doc.blocks:
        kind = block[0]
        if kind == "heading":
            out.append(f"<h{block[1]}>{_inline_html(block[2])}</h{block[1]}>")
        elif kind == "para":
            out.append(f"<p>{_inline_html(block[1])}</p>")
        elif kind == "bullets":
            out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline_html(h)}</th>" for h in header) + "</tr></thead><tbody>")
            for row in rows:
                out.append("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>")
            out.append("</tbody></table>")
        elif kind == "image":
            out.append(
                f'<figure><img src="{html.escape(block[1])}" alt="{html.escape(block[2])}">'
                f"<figcaption>{_inline_html(block[2])}</figcaption></figure>"
            )
        elif kind == "code":
            out.append(f"<pre>{html.escape(block[1])}</pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------
# Pieces of the report
# ---------------------------------------------------------------------------------------
def _fmt(value, digits=4):
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        if abs(value) >= 1000 or value == int(value) and abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _fmt_bytes(n):
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _best_trial(summary):
    best_id = summary.get("best_trial_id")
    for t in summary["trials"]:
        if best_id is not None and str(t.get("trial_id")) == str(best_id):
            return t
    return None


def model_summary_text(model_path):
    """`model.summary()` of a saved `.keras` model as text (loads it without compiling).

    Args:
        model_path: path of a `.keras` file.

    Returns:
        The summary text.
    """
    import keras

    import keras_nas  # noqa: F401  (registers the keras_nas layers for loading)

    model = keras.saving.load_model(str(model_path), compile=False)
    lines = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(str(line)))
    return "\n".join(lines)


def _latency_of(summary, best):
    """Latency measurements: (value_ms, source) from summary["best"] or the best trial."""
    extra = summary.get("best")
    if isinstance(extra, dict):
        for key in ("latency_ms", "tflite_latency_ms"):
            if extra.get(key) is not None:
                return float(extra[key]), "summary['best']"
    if best is not None:
        value = (best.get("metrics") or {}).get("latency_ms")
        if value is not None:
            return float(value), f"trial {best.get('trial_id')} metrics"
    return None, None


def _cell_rows(summary):
    """Width/depth of the found cell, of the published cells, and of the top trials."""
    arch = summary.get("best_architecture")
    found = None
    if arch:
        try:
            found = analysis.cell_width_depth(arch)
        except (ValueError, TypeError, SyntaxError):
            found = None
    return found


def _trial_table(summary, objective):
    seen = []
    for t in summary["trials"]:
        for m in (t.get("metrics") or {}):
            if m not in seen and m != "params" and m != objective:
                seen.append(m)
    # The objective, then validation metrics, then costs, then training metrics.
    rank = {"latency_ms": 1}
    order = {m: i for i, m in enumerate(seen)}
    seen.sort(key=lambda m: (0 if m.startswith("val_") else rank.get(m, 2), order[m]))
    metric_names = ([objective] + seen)[:6]
    best_id = summary.get("best_trial_id")
    header = ["#", "trial", "status", "architecture"] + metric_names + ["params", "duration", "note"]
    rows = []
    for t in plots._ordered_trials(summary):
        arch = t.get("architecture")
        if arch is None:
            hps = t.get("hyperparameters") or {}
            arch = ", ".join(f"{k}={v}" for k, v in hps.items())
        mark = " ★" if best_id is not None and str(t.get("trial_id")) == str(best_id) else ""
        number = t.get("number")
        row = [
            "-" if number is None else number + 1,
            f"{t.get('trial_id')}{mark}",
            t.get("status", "-"),
            f"`{arch}`" if arch else "-",
        ]
        for m in metric_names:
            row.append(_fmt((t.get("metrics") or {}).get(m, t.get("score") if m == objective else None)))
        row.append(_fmt(t.get("params")))
        row.append(format_duration(t.get("duration_s")) if t.get("duration_s") is not None else "-")
        err = t.get("error")
        row.append((err if len(err) <= 90 else err[:89] + "…") if err else "")
        rows.append(row)
    return header, rows


def build_document(summary, results_dir, figures, fmt="markdown"):
    """The report as a `_Doc` (used by `write_report`)."""
    objective, direction = plots.objective_of(summary)
    best = _best_trial(summary)
    doc = _Doc()
    doc.heading(f"keras-nas search report: {summary.get('space', '?')} / {summary.get('strategy', '?')}", 1)
    trials = summary["trials"]
    counts = {}
    for t in trials:
        counts[t.get("status", "?")] = counts.get(t.get("status", "?"), 0) + 1
    doc.table(
        ["setting", "value"],
        [
            ["search space", summary.get("space", "-")],
            ["strategy", summary.get("strategy", "-")],
            ["objective", f"{objective} ({direction})"],
            ["trials", f"{len(trials)} of {summary.get('max_trials', '?')} "
                       f"({', '.join(f'{v} {k.lower()}' for k, v in sorted(counts.items()))})"],
            ["epochs per trial", summary.get("epochs", "-")],
            ["seed", summary.get("seed") if summary.get("seed") is not None else "none"],
            ["time", format_duration(summary.get("elapsed_s")) if summary.get("elapsed_s") is not None else "-"],
        ],
    )

    # Best model ---------------------------------------------------------------------
    doc.heading("Best model")
    if best is None:
        doc.para("No trial completed, so there is no best model.")
    else:
        value = plots.trial_value(best, objective)
        items = [
            f"trial **{best.get('trial_id')}**, {objective} **{_fmt(value)}**",
            f"architecture: `{summary.get('best_architecture') or best.get('architecture') or '-'}`",
        ]
        if best.get("params") is not None:
            items.append(f"parameters: {_fmt(best.get('params'))}")
        latency, source = _latency_of(summary, best)
        tflites = sorted(Path(results_dir).glob("*.tflite"))
        for path in tflites:
            items.append(f"TFLite `{path.name}`: {_fmt_bytes(path.stat().st_size)}")
        extra = summary.get("best") if isinstance(summary.get("best"), dict) else {}
        size = extra.get("tflite_bytes", extra.get("tflite_size_bytes"))
        if size is not None and not tflites:
            items.append(f"TFLite size: {_fmt_bytes(size)}")
        if latency is not None:
            device = extra.get("device") or extra.get("latency_device")
            items.append(
                f"latency: **{latency:.4g} ms**" + (f" on {device}" if device else "") + f" (from {source})"
            )
        doc.bullets(items)

    # Cell diagnostics ---------------------------------------------------------------
    found = _cell_rows(summary)
    if found is not None:
        doc.heading("Cell width and depth")
        rows = [["**found cell**", f"**{analysis.format_width(found.width)}**", f"**{found.depth}**"]]
        for name, (w, d) in analysis.published_width_depth().items():
            rows.append([f"{name} (published)", analysis.format_width(w), d])
        doc.table(["cell", "width", "depth"], rows)
        note = WIDTH_DEPTH_NOTE
        if analysis.to_cell_graph(summary["best_architecture"]).kind == "nasbench201":
            note += (
                " Your cell is a NAS-Bench-201 cell (one input, three nodes), measured with the "
                "same rules; its numbers are smaller by construction, so compare it with the "
                "other trials of this search (figure below) rather than with the DARTS-space cells."
            )
        doc.para(note)

    # Figures ------------------------------------------------------------------------
    doc.heading("Figures")
    for name, path in figures.items():
        doc.image(path, _FIGURE_CAPTIONS.get(name, name))

    # Trials -------------------------------------------------------------------------
    doc.heading("Trials")
    header, rows = _trial_table(summary, objective)
    doc.table(header, rows)

    # Model summary ------------------------------------------------------------------
    model_name = summary.get("best_model") or "best_model.keras"
    model_path = Path(results_dir) / model_name
    if model_path.is_file():
        doc.heading("Best model summary")
        try:
            doc.code(model_summary_text(model_path))
        except Exception as err:  # a model that fails to load still gets a report
            doc.para(f"`{model_name}` could not be loaded: {type(err).__name__}: {err}")
    return doc


def write_report(results_dir, output=None, format="markdown"):
    """Writes one page (Markdown or HTML) about a search and the figures next to it.

    The page holds the search settings, the best model (architecture, objective, size,
    TFLite file sizes and latency when measured), the cell width/depth of the found cell
    against the published cells (Shu et al., ICLR 2020), the figures, the table of all
    trials, and `model.summary()` of `best_model.keras` when it exists.

    Args:
        results_dir: a search's results folder (holding `summary.json`).
        output: path of the page; default `results_dir/report.md` (or `report.html`).
            The figures are saved as PNGs in the same folder as the page.
        format: `"markdown"` or `"html"`.

    Returns:
        The path of the page written (a `str`).

    Example:

    ```python
    path = write_report("results/my_search", format="html")
    ```
    """
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {FORMATS}, got {format!r}.")
    if not isinstance(results_dir, (str, os.PathLike)):
        raise TypeError(f"`results_dir` must be a path, got {type(results_dir).__name__}.")
    results_dir = Path(results_dir)
    if not (results_dir / "summary.json").is_file():
        raise ValueError(f"`results_dir` must hold summary.json; none in {results_dir}.")
    summary = plots.load_summary(results_dir)
    if output is None:
        output = results_dir / ("report.md" if format == "markdown" else "report.html")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    saved = plots.save_figures(summary, output.parent)
    figures = {name: os.path.relpath(path, output.parent) for name, path in saved.items()}
    doc = build_document(summary, results_dir, figures, format)
    title = f"keras-nas report: {summary.get('space', '?')} / {summary.get('strategy', '?')}"
    text = _render_markdown(doc) if format == "markdown" else _render_html(doc, title)
    output.write_text(text, encoding="utf-8")
    return str(output)
