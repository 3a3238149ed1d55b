"""A MobileNet-style network as stages of inverted-residual (MBConv) blocks."""

import math
import re

from keras_nas.results.plots._style import _new_figure, _styled

_BLOCK_KEYS = ("stage", "kernel", "expansion", "filters", "stride")


def _validate_blocks(blocks):
    if isinstance(blocks, dict) and "blocks" in blocks:
        blocks = blocks["blocks"]
    if not isinstance(blocks, (list, tuple)) or not blocks:
        raise ValueError("`blocks` must be a non-empty list of block dicts.")
    out = []
    for i, b in enumerate(blocks):
        if not isinstance(b, dict):
            raise TypeError(f"`blocks[{i}]` must be a dict, got {type(b).__name__}.")
        missing = [k for k in _BLOCK_KEYS if k not in b]
        if missing:
            raise ValueError(f"`blocks[{i}]` lacks keys {missing}; each block needs {list(_BLOCK_KEYS)}.")
        out.append({k: int(b[k]) if k != "expansion" else float(b[k]) for k in _BLOCK_KEYS})
    return out


def macro_data(blocks):
    """What `plot_macro` draws, as plain values (no matplotlib).

    Args:
        blocks: as for `plot_macro`.

    Returns:
        A dict: `blocks`, the checked block dicts (`expansion` a float, the rest ints), and
        `stages`, the stage ids in order of appearance.

    Example:

    ```python
    macro_data(macro_blocks("w1.0|k3e1|k5e6-k3e6", stages=[(16, 1, 1), (24, 2, 2)]))["stages"]  # [0, 1]
    ```
    """
    blocks = _validate_blocks(blocks)
    stages = []
    for b in blocks:
        if b["stage"] not in stages:
            stages.append(b["stage"])
    return {"blocks": blocks, "stages": stages}


@_styled
def plot_macro(blocks, title="Network layout"):
    """Draws a MobileNet-style network as stages of inverted-residual (MBConv) blocks.

    Each block is a box whose height grows with its output filters, labelled with its
    expansion ratio, kernel size and filters; stride-2 blocks are hatched and marked
    "↓2". Stages are colored and bracketed below.

    Args:
        blocks: a list of dicts `{"stage": i, "kernel": k, "expansion": e, "filters": f,
            "stride": s}` in network order (or a dict with key `"blocks"`).
        title: figure title.

    Returns:
        The `Figure`.

    Example:

    ```python
    fig = plot_macro([
        {"stage": 0, "kernel": 3, "expansion": 1, "filters": 16, "stride": 1},
        {"stage": 1, "kernel": 5, "expansion": 6, "filters": 24, "stride": 2},
    ])
    ```
    """
    import matplotlib
    from matplotlib.patches import FancyBboxPatch

    data = macro_data(blocks)
    blocks, stages = data["blocks"], data["stages"]
    n = len(blocks)
    max_f = max(b["filters"] for b in blocks)
    fig = _new_figure((max(7.0, 1.15 * n + 2.0), 4.6))
    ax = fig.add_subplot(1, 1, 1)
    ax.axis("off")
    cmap = matplotlib.colormaps["Set2"]
    stage_color = {s: cmap(i % 8) for i, s in enumerate(stages)}
    box_w, gap = 0.9, 0.25
    x = 0.0
    stage_span = {}
    for i, b in enumerate(blocks):
        h = 0.8 + 2.2 * math.sqrt(b["filters"] / max_f)
        rect = FancyBboxPatch(
            (x, -h / 2), box_w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
            fc=stage_color[b["stage"]], ec="black", lw=1.2,
            hatch="//" if b["stride"] > 1 else None, zorder=2,
        )
        ax.add_patch(rect)
        e = b["expansion"]
        e_txt = f"{e:g}"
        ax.text(
            x + box_w / 2, 0, f"MB{e_txt}\n{b['kernel']}x{b['kernel']}\n{b['filters']}",
            ha="center", va="center", fontsize=9, zorder=3,
            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8),
        )
        if b["stride"] > 1:
            ax.text(x + box_w / 2, h / 2 + 0.15, f"↓{b['stride']}", ha="center", va="bottom",
                    fontsize=10, fontweight="bold", color="#C44E52")
        lo, hi = stage_span.get(b["stage"], (x, x + box_w))
        stage_span[b["stage"]] = (min(lo, x), max(hi, x + box_w))
        if i < n - 1:
            ax.annotate("", xy=(x + box_w + gap, 0), xytext=(x + box_w, 0),
                        arrowprops=dict(arrowstyle="-|>", color="#555555", lw=1.0), zorder=1)
        x += box_w + gap
    for s, (lo, hi) in stage_span.items():
        ax.plot([lo, lo, hi, hi], [-1.85, -1.95, -1.95, -1.85], color="black", lw=1)
        ax.text((lo + hi) / 2, -2.05, f"stage {s}", ha="center", va="top", fontsize=10)
    ax.set_xlim(-0.3, x + 0.1)
    ax.set_ylim(-2.6, 2.0)
    ax.set_title(title + f"  ({n} blocks, {len(stages)} stages)", fontsize=13, fontweight="bold")
    ax.text(0.0, 1.75, "MB<e> = inverted residual with expansion e; k x k depthwise kernel; "
            "output filters; hatched = stride 2", fontsize=8.5, color="#444444")
    fig.tight_layout()
    return fig


def macro_blocks(arch_str, stages=None):
    """Block list for `plot_macro` from a `MobileNetSpace` architecture string.

    Args:
        arch_str: e.g. `"w0.75|k3e6|k5e3-k3e6|k7e6-k3e3-k3e3"`: the width multiplier, then
            per stage its blocks as `k<kernel>e<expansion>` joined by `-`.
        stages: the space's `(filters, max_depth, stride)` per stage; default MobileNetV2's
            (`keras_nas.spaces.mobilenet.MOBILENETV2_STAGES`). Filters are scaled by the
            width multiplier and rounded as the space does; the stride shown is the stage's
            nominal one (the space may run early stages at stride 1 on small inputs).

    Returns:
        A list of `{"stage", "kernel", "expansion", "filters", "stride"}` dicts.

    Example:

    ```python
    plot_macro(macro_blocks("w1.0|k3e1|k5e6-k3e6", stages=[(16, 1, 1), (24, 2, 2)]))
    ```
    """
    from keras_nas.spaces.mobilenet import MOBILENETV2_STAGES, make_divisible

    stages = MOBILENETV2_STAGES if stages is None else stages
    if not isinstance(arch_str, str) or not re.fullmatch(
        r"w[0-9.]+(\|(k\d+e\d+(-k\d+e\d+)*)?)+", arch_str.strip()
    ):
        raise ValueError(
            f"`arch_str` must look like 'w1.0|k3e6|k5e3-k3e6', got {arch_str!r}."
        )
    fields = arch_str.strip().split("|")
    if len(fields) - 1 != len(stages):
        raise ValueError(
            f"`arch_str` has {len(fields) - 1} stages but `stages` describes {len(stages)}."
        )
    width = float(fields[0][1:])
    blocks = []
    for s, (field, (filters, _, stride)) in enumerate(zip(fields[1:], stages)):
        for b, block in enumerate(field.split("-") if field else []):
            kernel, expansion = (int(v) for v in re.findall(r"\d+", block))
            blocks.append({
                "stage": s, "kernel": kernel, "expansion": expansion,
                "filters": int(make_divisible(filters * width)),
                "stride": int(stride) if b == 0 else 1,
            })
    return blocks
