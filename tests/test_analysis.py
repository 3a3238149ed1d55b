"""Cell width and depth (Shu, Wang and Cai, ICLR 2020) on the published cells and NAS-Bench-201."""

import collections

import pytest

from keras_nas.results import analysis
from keras_nas.results.analysis import PUBLISHED_CELLS, cell_width_depth

# Figure 1 of the paper, written out here independently of the module's table.
FIGURE_1 = {"NASNet": (5.0, 2), "AmoebaNet": (4.0, 4), "ENAS": (5.0, 2), "DARTS": (3.5, 3), "SNAS": (4.0, 2)}


@pytest.mark.parametrize("name", sorted(FIGURE_1))
def test_published_cells_reproduce_figure_1(name):
    width, depth = cell_width_depth(PUBLISHED_CELLS[name])
    assert (width, depth) == FIGURE_1[name]
    assert analysis.PUBLISHED_WIDTH_DEPTH[name] == FIGURE_1[name]


def test_published_cells_shape():
    # Five-node cells for NASNet, AmoebaNet, ENAS; four for DARTS and SNAS.
    sizes = {name: len(cell["normal"]) // 2 for name, cell in PUBLISHED_CELLS.items()}
    assert sizes == {"NASNet": 5, "AmoebaNet": 5, "ENAS": 5, "DARTS": 4, "SNAS": 4}
    assert PUBLISHED_CELLS["AmoebaNet"]["concat"] == [4, 5, 6]


DARTS_PAIRS = PUBLISHED_CELLS["DARTS"]["normal"]
DARTS_STR = "|".join(
    f"{a[0]}~{a[1]},{b[0]}~{b[1]}" for a, b in zip(DARTS_PAIRS[::2], DARTS_PAIRS[1::2])
)


@pytest.mark.parametrize(
    "genotype",
    [
        DARTS_PAIRS,
        [list(p) for p in DARTS_PAIRS],  # JSON form
        {"normal": DARTS_PAIRS, "normal_concat": [2, 3, 4, 5]},
        collections.namedtuple("Genotype", "normal normal_concat reduce reduce_concat")(
            DARTS_PAIRS, range(2, 6), [], []
        ),
        DARTS_STR,
        f"normal={DARTS_STR};reduce={DARTS_STR}",
        f"Genotype(normal={DARTS_PAIRS!r}, normal_concat=range(2, 6), reduce=[], reduce_concat=[])",
    ],
    ids=["pairs", "lists", "dict", "namedtuple", "cell-str", "space-str", "repr"],
)
def test_darts_genotype_forms_agree(genotype):
    assert cell_width_depth(genotype) == (3.5, 3)


def test_darts_deeper_chain_and_partial_width():
    # node2 <- inputs; node3 <- node2 + input; node4 <- node3 + node2; node5 <- node4 + node4.
    chain = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 2), ("sep_conv_3x3", 1),
             ("sep_conv_3x3", 3), ("skip_connect", 2), ("sep_conv_3x3", 4), ("sep_conv_3x3", 4)]
    width, depth = cell_width_depth(chain)
    assert width == 1.5  # node2 counts c, node3 c/2, nodes 4 and 5 nothing
    assert depth == 5  # input -> 2 -> 3 -> 4 -> 5 -> output


def test_unused_nodes_and_none_ops_do_not_count():
    pairs = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("none", 0), ("skip_connect", 1)]
    # Only node 2 is concatenated: node 3 leads nowhere and is left out.
    assert cell_width_depth({"normal": pairs, "concat": [2]}) == (1.0, 2)
    # With node 3 concatenated, its `none` edge is not a connection: one edge from the inputs.
    assert cell_width_depth({"normal": pairs, "concat": [2, 3]}) == (2.0, 2)


@pytest.mark.parametrize(
    "arch, expected",
    [
        # Every edge a conv: node1 c, node2 c/2, node3 c/3; longest path 0->1->2->3.
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
         (round(1 + 1 / 2 + 1 / 3, 6), 3)),
        # Only the direct edge 0->3 is live (node 1 and 2 lead nowhere).
        ("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", (1.0, 1)),
        # A pure chain: only node 1 touches the input.
        ("|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|avg_pool_3x3~2|", (1.0, 3)),
        # Nothing reaches the output.
        ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", (0.0, 0)),
    ],
)
def test_nasbench201_cells(arch, expected):
    assert cell_width_depth(arch) == expected
    assert analysis.to_cell_graph(arch).kind == "nasbench201"


def test_bad_genotypes_raise():
    with pytest.raises(ValueError, match="two"):
        cell_width_depth([("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 0)])
    with pytest.raises(ValueError, match="node 2 takes input 2"):
        cell_width_depth([("sep_conv_3x3", 2), ("sep_conv_3x3", 1)])
    with pytest.raises(TypeError, match="genotype"):
        cell_width_depth(42)
    with pytest.raises(ValueError, match="genotype"):
        cell_width_depth("not a cell")
    with pytest.raises(ValueError, match="concat"):
        cell_width_depth({"normal": DARTS_PAIRS, "concat": [9]})


def test_format_width():
    assert analysis.format_width(3.5) == "3.5c"
    assert analysis.format_width(4.0) == "4c"
