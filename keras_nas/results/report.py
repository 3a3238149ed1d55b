"""One page about a finished search: figures, trial table, best model, cell diagnostics.

`write_report(results_dir)` reads `results_dir/summary.json` (and, when present,
`best_model.keras`, `*.tflite` files and latency measurements), links to the figures in
`results_dir/figures/` (drawing those missing) and writes the page as Markdown or HTML.
`keras-nas report RESULTS_DIR` calls it.

```python
from keras_nas.results.report import write_report
path = write_report("results/my_search", format="html")
```
"""

import html
import math
import os
from pathlib import Path

from keras_nas.results import analysis
from keras_nas.results import plots
from keras_nas.results.summary import load_summary, objective_of, trial_value
from keras_nas.tuning.progress import ProgressPrinter, format_duration  # noqa: F401  (re-exported)

FORMATS = ("markdown", "html")
FIGURES_DIR = "figures"  # under a results folder, as `keras-nas search` writes them
_FIGURE_CAPTIONS = {
    "history": "Search history: each trial's {quality} and the best so far, by trial and by wall time.",
    "pareto": "{quality} against latency / size: the non-dominated front in green, the chosen model starred.",
    "controller": "REINFORCE controller: reward and baseline, entropy, and each decision's probabilities.",
    "cell": "The found cell: ops on the edges (`none` edges left out). Dashed edges (DARTS cells) "
            "concatenate the intermediate nodes into the cell output; faded nodes and edges lie "
            "on no input-to-output path, so they do not affect the output.",
    "cell_shapes": "Width and depth of every trial's cell (Shu et al., ICLR 2020), colored by {quality}.",
    "macro": "The found network: stages of MBConv blocks.",
}
# What a latency target adds to a caption.
_TARGET_CAPTIONS = {
    "history": " Trials over the {target:g} ms latency target are hollow; the best so far counts "
               "only the trials within it. The search scored trials by `{objective}`.",
    "pareto": " The dashed red line is the {target:g} ms latency target; trials over it are ringed in red.",
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


def _caption(name, summary):
    """The caption of figure `name`, naming what it plots for this summary."""
    quality, _ = plots.quality_metric(summary)
    objective, _ = objective_of(summary)
    target = plots.latency_target(summary)
    caption = _FIGURE_CAPTIONS.get(name, name)
    if target is not None:
        caption += _TARGET_CAPTIONS.get(name, "")
    return caption.format(quality=quality, objective=objective, target=target)


def _best_items(summary, best, results_dir):
    """Bullets about the best trial and the returned model (test accuracy, size, latency)."""
    quality, _ = plots.quality_metric(summary)
    objective, _ = objective_of(summary)
    target = plots.latency_target(summary)
    extra = summary.get("best") if isinstance(summary.get("best"), dict) else {}
    head = f"trial **{best.get('trial_id')}**, {quality} **{_fmt(trial_value(best, quality))}**"
    if objective != quality:
        head += f" (search score `{objective}` {_fmt(trial_value(best, objective))})"
    items = [head, f"architecture: `{summary.get('best_architecture') or best.get('architecture') or '-'}`"]
    if extra.get("test_accuracy") is not None:
        items.append(f"test accuracy of the returned model: **{_fmt(float(extra['test_accuracy']))}**")
    if best.get("params") is not None:
        items.append(f"parameters: {_fmt(best.get('params'))}")
    tflites = sorted(Path(results_dir).glob("*.tflite"))
    for path in tflites:
        items.append(f"TFLite `{path.name}`: {_fmt_bytes(path.stat().st_size)}")
    size = extra.get("tflite_bytes", extra.get("tflite_size_bytes"))
    if size is not None and not tflites:
        items.append(f"TFLite size: {_fmt_bytes(size)}")
    if extra.get("tflite_top1_agreement") is not None or extra.get("tflite_max_abs_diff") is not None:
        items.append(f"TFLite against Keras: top-1 agreement {_fmt(extra.get('tflite_top1_agreement'))}, "
                     f"max |difference| {_fmt(extra.get('tflite_max_abs_diff'))}")
    exported = extra.get("latency_ms", extra.get("tflite_latency_ms"))
    if exported is not None:
        model = f"`{extra['tflite']}`" if extra.get("tflite") else "the returned model's TFLite export"
        p90 = extra.get("latency_p90_ms")
        p90 = f", p90 {_fmt(float(p90))} ms" if p90 is not None else ""
        device = extra.get("device") or extra.get("latency_device")
        items.append(f"latency of {model}: **{float(exported):.4g} ms** median{p90}, batch 1"
                     + (f", on {device}" if device else ""))
    searched = trial_value(best, "latency_ms")
    if searched is not None:
        text = f"latency in the search: **{searched:.4g} ms** (trial {best.get('trial_id')}'s TFLite export)"
        if target is not None:
            text += f", {'over' if searched > target else 'within'} the {target:g} ms target"
        items.append(text)
    return items


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


def _trial_table(summary):
    """Header and rows of the trial table: quality first, then (with a latency target) latency
    and the search's reward, then validation, cost and training metrics."""
    quality, _ = plots.quality_metric(summary)
    objective, _ = objective_of(summary)
    target = plots.latency_target(summary)
    lead = [quality] + (["latency_ms"] if target is not None else [])
    lead += [objective] if objective not in lead else []
    seen = []
    for t in summary["trials"]:
        for m in (t.get("metrics") or {}):
            if m not in seen and m != "params" and m not in lead:
                seen.append(m)
    rank = {"latency_ms": 1}
    order = {m: i for i, m in enumerate(seen)}
    seen.sort(key=lambda m: (0 if m.startswith("val_") else rank.get(m, 2), order[m]))
    metric_names = (lead + seen)[:6]
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
            cell = _fmt((t.get("metrics") or {}).get(m, t.get("score") if m == objective else None))
            if m == "latency_ms" and plots.over_target(t, target):
                cell += " (over target)"
            row.append(cell)
        row.append(_fmt(t.get("params")))
        row.append(format_duration(t.get("duration_s")) if t.get("duration_s") is not None else "-")
        err = t.get("error")
        row.append((err if len(err) <= 90 else err[:89] + "…") if err else "")
        rows.append(row)
    return header, rows


def build_document(summary, results_dir, figures, fmt="markdown"):
    """The report as a `_Doc` (used by `write_report`)."""
    objective, direction = objective_of(summary)
    target = plots.latency_target(summary)
    best = _best_trial(summary)
    doc = _Doc()
    doc.heading(f"keras-nas search report: {summary.get('space', '?')} / {summary.get('strategy', '?')}", 1)
    trials = summary["trials"]
    counts = {}
    for t in trials:
        counts[t.get("status", "?")] = counts.get(t.get("status", "?"), 0) + 1
    settings = [
        ["search space", summary.get("space", "-")],
        ["strategy", summary.get("strategy", "-")],
        ["objective", f"{objective} ({direction})"],
        ["trials", f"{len(trials)} of {summary.get('max_trials', '?')} "
                   f"({', '.join(f'{v} {k.lower()}' for k, v in sorted(counts.items()))})"],
        ["epochs per trial", summary.get("epochs", "-")],
        ["seed", summary.get("seed") if summary.get("seed") is not None else "none"],
        ["time", format_duration(summary.get("elapsed_s")) if summary.get("elapsed_s") is not None else "-"],
    ]
    if target is not None:
        reward = summary.get("latency_objective") or objective
        if isinstance(reward, dict):  # {"name", "class", settings...}
            reward = f"{reward.get('class', reward.get('name'))}(" + ", ".join(
                f"{k}={v!r}" for k, v in reward.items() if k not in ("name", "class")) + ")"
        settings.insert(3, ["latency target", f"{target:g} ms, scored by `{reward}`"])
    doc.table(["setting", "value"], settings)

    # Best model ---------------------------------------------------------------------
    doc.heading("Best model")
    if best is None:
        doc.para("No trial completed, so there is no best model.")
    else:
        doc.bullets(_best_items(summary, best, results_dir))

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
        doc.image(path, _caption(name, summary))

    # Trials -------------------------------------------------------------------------
    doc.heading("Trials")
    header, rows = _trial_table(summary)
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
    """Writes one page (Markdown or HTML) about a search, linking to its figures.

    The page holds the search settings, the best model (architecture, accuracy, test
    accuracy, size, TFLite file sizes and latency when measured), the cell width/depth of
    the found cell against the published cells (Shu et al., ICLR 2020), the figures, the
    table of all trials, and `model.summary()` of `best_model.keras` when it exists. With a
    latency target, accuracy and latency are shown apart from the search's reward.

    The figures live in `results_dir/figures/`, where `keras-nas search` writes them; the
    page links to those newer than `summary.json` and first draws there any missing or older.

    Args:
        results_dir: a search's results folder (holding `summary.json`).
        output: path of the page; default `results_dir/report.md` (or `report.html`).
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
    summary = load_summary(results_dir)
    if output is None:
        output = results_dir / ("report.md" if format == "markdown" else "report.html")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    saved = plots.save_figures(summary, results_dir / FIGURES_DIR,
                               keep_newer_than=(results_dir / "summary.json").stat().st_mtime)
    figures = {name: Path(os.path.relpath(path, output.parent)).as_posix() for name, path in saved.items()}
    doc = build_document(summary, results_dir, figures, format)
    title = f"keras-nas report: {summary.get('space', '?')} / {summary.get('strategy', '?')}"
    text = _render_markdown(doc) if format == "markdown" else _render_html(doc, title)
    output.write_text(text, encoding="utf-8")
    return str(output)
