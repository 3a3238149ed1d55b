"""Diagnostics of found cells: the width and depth of Shu, Wang and Cai (ICLR 2020).

Shu, Wang and Cai, "Understanding Architectures Learnt by Cell-based Neural Architecture
Search" (ICLR 2020), measure a cell by two numbers:

- **depth**: the number of connections along the longest path from the cell's input
  nodes to its output node;
- **width**: the total width of the intermediate nodes that are connected to the input
  nodes, in units of `c`, the channel count of one intermediate node. A node whose
  incoming connections all come from the cell inputs counts `c`; a node that is only
  partly fed by the cell inputs (some of its connections come from other intermediate
  nodes) has its width reduced by the fraction of its connections that come from
  intermediate nodes, so a DARTS node with one input edge from a cell input and one from
  another node counts `c / 2`.

With these rules the published normal cells of the DARTS search space measure
(Figure 1 of the paper): NASNet 5c / depth 2, AmoebaNet 4c / 4, ENAS 5c / 2, DARTS (2nd
order) 3.5c / 3, SNAS 4c / 2; see `PUBLISHED_CELLS` and `PUBLISHED_WIDTH_DEPTH`.

What the numbers mean: the paper finds that NAS algorithms, whose search compares
candidates after short or weight-shared training, favour **wide and shallow** cells,
because such cells have smoother loss landscapes and better-conditioned gradients and
so converge fastest. Fast convergence is what the search rewards, but it is not better
generalisation: when the same cells are trained to the end, deeper and narrower
variants in the same space do as well or better. A found cell that is as wide and
shallow as the published ones is therefore what one expects from the search bias, not
evidence that width is what the task needs.

Besides DARTS genotypes, `cell_width_depth` measures NAS-Bench-201 cells (an `arch_str`).
There the single input is node 0 and node 3 is the output; nodes 1, 2 and 3 each sum the
results of the ops on their incoming edges, so all three count toward the width with the
same rule (a node fed only by node 0 counts `c`; node 3 with live edges from nodes 0, 1
and 2 counts `c / 3`), and the depth is the number of edges (ops) on the longest path
from node 0 to node 3. Edges with the op `none` are not connections, and nodes that lie
on no input-to-output path are left out of both numbers.
"""

import ast
import collections
import re
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------
# Published normal cells of the DARTS search space.
#
# Representation (DARTS' `genotype.normal`): a list of (op, input_index) pairs, two per
# intermediate node, in node order. Inputs 0 and 1 are the cell inputs (the outputs of
# the two previous cells), 2, 3, ... the intermediate nodes. `concat` lists the nodes the
# output concatenates. NASNet, AmoebaNet and ENAS cells have five intermediate nodes;
# AmoebaNet's output concatenates only the nodes no other node uses.
# Sources: Zoph et al. 2018 (NASNet-A), Real et al. 2019 (AmoebaNet-A), Pham et al. 2018
# (ENAS), Liu et al. 2019 (DARTS, second order), Xie et al. 2019 (SNAS, mild constraint),
# as transcribed in the DARTS code release.
# ---------------------------------------------------------------------------------------
PUBLISHED_CELLS = {
    "NASNet": {
        "normal": [
            ("sep_conv_5x5", 1), ("sep_conv_3x3", 0),
            ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
            ("avg_pool_3x3", 1), ("skip_connect", 0),
            ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
            ("sep_conv_3x3", 1), ("skip_connect", 1),
        ],
        "concat": [2, 3, 4, 5, 6],
    },
    "AmoebaNet": {
        "normal": [
            ("avg_pool_3x3", 0), ("max_pool_3x3", 1),
            ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 0), ("avg_pool_3x3", 3),
            ("sep_conv_3x3", 1), ("skip_connect", 1),
            ("skip_connect", 0), ("avg_pool_3x3", 1),
        ],
        "concat": [4, 5, 6],
    },
    "ENAS": {
        "normal": [
            ("sep_conv_3x3", 1), ("skip_connect", 1),
            ("sep_conv_5x5", 1), ("skip_connect", 0),
            ("avg_pool_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0), ("avg_pool_3x3", 1),
            ("sep_conv_5x5", 1), ("avg_pool_3x3", 0),
        ],
        "concat": [2, 3, 4, 5, 6],
    },
    "DARTS": {
        "normal": [
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
            ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0), ("skip_connect", 2),
        ],
        "concat": [2, 3, 4, 5],
    },
    "SNAS": {
        "normal": [
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("dil_conv_3x3", 1),
            ("skip_connect", 1), ("skip_connect", 0),
            ("skip_connect", 0), ("sep_conv_3x3", 1),
        ],
        "concat": [2, 3, 4, 5],
    },
}

# Figure 1 of Shu, Wang and Cai (ICLR 2020): (width in units of c, depth).
PUBLISHED_WIDTH_DEPTH = {
    "NASNet": (5.0, 2),
    "AmoebaNet": (4.0, 4),
    "ENAS": (5.0, 2),
    "DARTS": (3.5, 3),
    "SNAS": (4.0, 2),
}

NASBENCH201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

CellWidthDepth = collections.namedtuple("CellWidthDepth", ["width", "depth"])
CellWidthDepth.__doc__ = """Width (in units of c, a float) and depth (an int) of a cell."""


@dataclass
class CellGraph:
    """A cell as a DAG, the common form of DARTS genotypes and NAS-Bench-201 cells.

    Attributes:
        kind: `"darts"` or `"nasbench201"`.
        inputs: ids of the cell input nodes.
        compute_nodes: ids of the nodes that combine op outputs (count toward width).
        output: id of the output node.
        edges: `(src, dst, op)` triples; `op` is `None` for the plain connections of
            DARTS intermediate nodes into the output concatenation. `none` ops are dropped.
        labels: display name of each node.
    """

    kind: str
    inputs: list
    compute_nodes: list
    output: int
    edges: list
    labels: dict = field(default_factory=dict)

    @property
    def nodes(self):
        """All node ids: inputs, compute nodes, then the output (once)."""
        ids = list(self.inputs) + list(self.compute_nodes)
        if self.output not in ids:
            ids.append(self.output)
        return ids

    def live_edges(self):
        """Edges on some input-to-output path (the ones that affect the result)."""
        succ = collections.defaultdict(list)
        pred = collections.defaultdict(list)
        for src, dst, _ in self.edges:
            succ[src].append(dst)
            pred[dst].append(src)
        from_inputs = _reach(self.inputs, succ)
        to_output = _reach([self.output], pred)
        return [
            e for e in self.edges if e[0] in from_inputs and e[1] in to_output
        ]

    def levels(self):
        """Longest distance (in edges) from the inputs to each node, over all edges."""
        level = {n: 0 for n in self.inputs}
        order = self.nodes
        incoming = collections.defaultdict(list)
        for src, dst, _ in self.edges:
            incoming[dst].append(src)
        for n in order:
            if n in level and n in self.inputs:
                continue
            srcs = incoming.get(n, [])
            level[n] = 1 + max((level.get(s, 0) for s in srcs), default=0) if srcs else 0
        return level


def _reach(start, adjacency):
    seen = set(start)
    stack = list(start)
    while stack:
        n = stack.pop()
        for m in adjacency.get(n, []):
            if m not in seen:
                seen.add(m)
                stack.append(m)
    return seen


def _is_nasbench201_str(text):
    return bool(re.fullmatch(r"\|([^|+~]+~\d+\|)+(\+\|([^|+~]+~\d+\|)+)*", text.strip()))


def _is_darts_str(text):
    pair = r"\s*[^|,~\s]+~\d+\s*"
    node = pair + "," + pair
    return bool(re.fullmatch(node + r"(\|" + node + ")*", text.strip()))


def parse_nasbench201(arch_str):
    """Parses a NAS-Bench-201 `arch_str` into a `CellGraph`.

    Args:
        arch_str: e.g. `"|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"`:
            node `j` (1, 2, ...) lists its inputs as `op~i`, nodes separated by `+`.

    Returns:
        A `CellGraph` with input node 0 and output node `len(nodes)`.

    Example:

    ```python
    g = parse_nasbench201("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_1x1~2|")
    ```
    """
    if not isinstance(arch_str, str) or not _is_nasbench201_str(arch_str):
        raise ValueError(
            "`arch_str` must be a NAS-Bench-201 cell string such as "
            "'|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|', got "
            f"{arch_str!r}."
        )
    groups = arch_str.strip().split("+")
    edges = []
    for j, group in enumerate(groups, start=1):
        items = [t for t in group.split("|") if t]
        for item in items:
            op, src = item.rsplit("~", 1)
            src = int(src)
            if src >= j:
                raise ValueError(
                    f"`arch_str` node {j} takes input {src}, which is not an earlier node: {arch_str!r}."
                )
            if op != "none":
                edges.append((src, j, op))
    n = len(groups)
    labels = {0: "in", n: "out"}
    labels.update({j: str(j) for j in range(1, n)})
    return CellGraph(
        kind="nasbench201",
        inputs=[0],
        compute_nodes=list(range(1, n + 1)),
        output=n,
        edges=edges,
        labels=labels,
    )


def _pairs_from_string(text):
    """DARTS genotype from its Python repr, e.g. "Genotype(normal=[('sep_conv_3x3', 0), ...], ...)"."""
    text = text.strip()
    concat = None
    # keras_nas' DartsSpace architecture string: "normal=<cell>;reduce=<cell>".
    match = re.fullmatch(r"(?:[^;]*;)*\s*normal\s*=\s*([^;]+)(?:;.*)?", text)
    if match and _is_darts_str(match.group(1)):
        text = match.group(1).strip()
    match = re.search(r"normal\s*=\s*(\[[^\]]*\])", text)
    if match:
        pairs = ast.literal_eval(match.group(1))
        m2 = re.search(r"normal_concat\s*=\s*(\[[^\]]*\]|range\(\s*\d+\s*,\s*\d+\s*\))", text)
        if m2:
            spec = m2.group(1)
            if spec.startswith("range"):
                lo, hi = (int(v) for v in re.findall(r"\d+", spec))
                concat = list(range(lo, hi))
            else:
                concat = ast.literal_eval(spec)
        return pairs, concat
    if text.startswith("["):
        return ast.literal_eval(text), None
    # keras_nas' DartsCell string: "op~i,op~i|op~i,op~i|..." (nodes by "|", pairs by ",").
    if _is_darts_str(text):
        pairs = []
        for node in text.split("|"):
            for item in node.split(","):
                op, src = item.strip().rsplit("~", 1)
                pairs.append((op, int(src)))
        return pairs, None
    # NAS-Bench-201-style string with two inputs per node: |op~i|op~i|+|...|
    if _is_nasbench201_str(text):
        pairs = []
        for group in text.split("+"):
            items = [t for t in group.split("|") if t]
            if len(items) != 2:
                raise ValueError("not a two-input DARTS string")
            for item in items:
                op, src = item.rsplit("~", 1)
                pairs.append((op, int(src)))
        return pairs, None
    raise ValueError("unrecognised genotype string")


def parse_darts_genotype(genotype, concat=None):
    """Parses a DARTS genotype (its normal cell) into a `CellGraph`.

    Args:
        genotype: one of
            - a list of `(op, input_index)` pairs, two per intermediate node;
            - a dict with key `"normal"` (and optional `"normal_concat"` or `"concat"`);
            - an object with attributes `normal` and `normal_concat` (DARTS' `Genotype`);
            - a string: keras_nas' `DartsCell` form `"op~i,op~j|op~i,op~j|..."` (or the
              `DartsSpace` form `"normal=<that>;reduce=<that>"`, its normal cell), the repr
              of a DARTS `Genotype`, a list literal of pairs, or
              `"|op~i|op~j|+|op~i|op~j|+..."` with two inputs per node.
        concat: the intermediate nodes the output concatenates; default all of them
            (overrides the one in `genotype`).

    Returns:
        A `CellGraph` with inputs 0 and 1, intermediate nodes 2, 3, ... and an output
        node that concatenates `concat`.

    Example:

    ```python
    g = parse_darts_genotype(PUBLISHED_CELLS["DARTS"]["normal"])
    ```
    """
    pairs = genotype
    given_concat = None
    if isinstance(genotype, str):
        try:
            pairs, given_concat = _pairs_from_string(genotype)
        except (ValueError, SyntaxError) as err:
            raise ValueError(
                f"`genotype` string is not a DARTS genotype ({err}): {genotype!r}."
            ) from None
    elif isinstance(genotype, dict):
        if "normal" not in genotype:
            raise ValueError(
                f"`genotype` dict must have a 'normal' key, got keys {sorted(genotype)}."
            )
        pairs = genotype["normal"]
        given_concat = genotype.get("normal_concat", genotype.get("concat"))
    elif hasattr(genotype, "normal"):
        pairs = genotype.normal
        given_concat = getattr(genotype, "normal_concat", None)
    if concat is None:
        concat = given_concat
    try:
        pairs = [(str(op), int(src)) for op, src in pairs]
    except (TypeError, ValueError):
        raise TypeError(
            "`genotype` must be a list of (op, input_index) pairs, got "
            f"{genotype!r}."
        ) from None
    if not pairs or len(pairs) % 2:
        raise ValueError(
            f"`genotype` must have two (op, input) pairs per node, got {len(pairs)} pairs."
        )
    n_nodes = len(pairs) // 2
    nodes = list(range(2, 2 + n_nodes))
    output = 2 + n_nodes
    edges = []
    for k, (op, src) in enumerate(pairs):
        dst = 2 + k // 2
        if not 0 <= src < dst:
            raise ValueError(
                f"`genotype` node {dst} takes input {src}; inputs must be 0, 1 or an "
                "earlier intermediate node."
            )
        if op != "none":
            edges.append((src, dst, op))
    concat = nodes if concat is None else [int(c) for c in concat]
    for c in concat:
        if c not in nodes:
            raise ValueError(
                f"`concat` entry {c} is not an intermediate node (expected one of {nodes})."
            )
    for c in concat:
        edges.append((c, output, None))
    labels = {0: "c_{k-2}", 1: "c_{k-1}", output: "c_{k}"}
    labels.update({n: str(n - 2) for n in nodes})
    return CellGraph(
        kind="darts",
        inputs=[0, 1],
        compute_nodes=nodes,
        output=output,
        edges=edges,
        labels=labels,
    )


def to_cell_graph(cell):
    """Turns any supported cell description into a `CellGraph`.

    Args:
        cell: a `CellGraph`, a NAS-Bench-201 `arch_str`, or a DARTS genotype in any form
            `parse_darts_genotype` accepts.

    Returns:
        A `CellGraph`.
    """
    if isinstance(cell, CellGraph):
        return cell
    if isinstance(cell, str):
        text = cell.strip()
        if _is_nasbench201_str(text):
            sizes = [len([t for t in g.split("|") if t]) for g in text.split("+")]
            if sizes == list(range(1, len(sizes) + 1)):
                return parse_nasbench201(text)
        return parse_darts_genotype(text)
    if isinstance(cell, (list, tuple, dict)) or hasattr(cell, "normal"):
        return parse_darts_genotype(cell)
    raise TypeError(
        "`genotype` must be a NAS-Bench-201 arch_str, a DARTS genotype (list of "
        f"(op, input) pairs, dict or Genotype) or a CellGraph, got {type(cell).__name__}."
    )


def cell_width_depth(genotype):
    """Width and depth of a cell, as defined by Shu, Wang and Cai (ICLR 2020).

    - depth: connections along the longest path from a cell input to the cell output
      (for DARTS cells this counts the final connection into the output concatenation,
      so an input -> node -> output path has depth 2);
    - width: the sum, over the intermediate nodes connected to the cell inputs, of their
      width in units of `c`: `c` times the fraction of the node's incoming connections
      that come from the cell inputs (`c` for a DARTS node with both inputs from the
      cell inputs, `c / 2` for one from a cell input and one from another node).

    Only connections that lie on an input-to-output path count; `none` ops are not
    connections. The paper's finding: searches favour wide, shallow cells because they
    converge fast, which does not make them generalise better (see the module docstring).

    Args:
        genotype: a DARTS genotype (a list of `(op, input_index)` pairs, two per node,
            inputs 0/1 being the cell inputs; a dict with `"normal"` and optional
            `"normal_concat"`; DARTS' `Genotype`; or its repr string), or a NAS-Bench-201
            `arch_str` (node 0 input, last node output; see the module docstring).

    Returns:
        `CellWidthDepth(width, depth)`: width as a float in units of `c`, depth an int.

    Example:

    ```python
    from keras_nas.results.analysis import PUBLISHED_CELLS, cell_width_depth
    cell_width_depth(PUBLISHED_CELLS["DARTS"])  # CellWidthDepth(width=3.5, depth=3)
    cell_width_depth("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    ```
    """
    graph = to_cell_graph(genotype)
    live = graph.live_edges()
    if not live:
        return CellWidthDepth(0.0, 0)
    incoming = collections.defaultdict(list)
    for src, dst, _ in live:
        incoming[dst].append(src)
    inputs = set(graph.inputs)
    width = 0.0
    for node in graph.compute_nodes:
        srcs = incoming.get(node, [])
        from_inputs = sum(1 for s in srcs if s in inputs)
        if from_inputs:
            width += from_inputs / len(srcs)
    # Longest path over live edges, nodes in topological (id) order.
    dist = {n: 0 for n in graph.inputs}
    for node in sorted(set(incoming) - inputs):
        dist[node] = 1 + max(dist[s] for s in incoming[node])
    return CellWidthDepth(round(width, 6), int(dist.get(graph.output, 0)))


def published_width_depth():
    """`{name: CellWidthDepth}` computed by `cell_width_depth` for `PUBLISHED_CELLS`."""
    return {name: cell_width_depth(cell) for name, cell in PUBLISHED_CELLS.items()}


def format_width(width):
    """`3.5` -> `"3.5c"`, `4.0` -> `"4c"`."""
    return f"{width:.2f}".rstrip("0").rstrip(".") + "c"
