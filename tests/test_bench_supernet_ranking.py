"""The supernet ranking benchmark (tools/bench_supernet_ranking.py)."""

import argparse
import json

import pytest

from tests.tools_loader import load_tool


def test_configurations_and_scoring_are_parsed_and_bad_ones_refused():
    bench = load_tool("bench_supernet_ranking")
    config = bench.parse_config("spos:sampling=fair,epochs=30,optimizer=adam")
    assert config["method"] == "spos" and config["sampling"] == "fair"
    assert config["epochs"] == 30 and config["optimizer"] == "adam"
    assert bench.parse_config("enas")["epochs"] == 20
    assert bench.parse_config("spos:run_eagerly=true")["run_eagerly"] is True
    assert bench.parse_config("spos")["run_eagerly"] is False
    for bad, match in (("darts", "method"), ("spos:epoch=3", "key"),
                       ("spos:run_eagerly=yes", "run_eagerly"),
                       ("spos:optimizer=rmsprop", "optimizer"), ("enas:sampling=fair", "sampling")):
        with pytest.raises(ValueError, match=match):
            bench.parse_config(bad)
    assert bench.scoring("16:1000") == (16, 1000)
    for bad in ("16", "0:100", "4:x"):
        with pytest.raises(Exception, match="--scoring"):
            bench.scoring(bad)
    with pytest.raises(SystemExit):
        bench.main(["--cells", "0"])
    with pytest.raises(SystemExit):
        bench.main(["--config", "spos:sampling"])


def test_data_cells_and_the_shared_record(tmp_path):
    bench = load_tool("bench_supernet_ranking")
    xt, yt, xv, yv = bench.load_data("digits")
    assert xt.shape == (1000, 8, 8, 1) and len(xv) == 797 and set(yt) == set(range(10))
    with pytest.raises(ValueError, match="--data"):
        bench.load_data("cifar")
    from keras_nas.spaces import NASBench201Space

    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, channels=4)
    cells = bench.random_cells(space, 12, seed=1)
    assert len(set(cells)) == 12 and cells == bench.random_cells(space, 12, seed=1)
    # two writers of one file keep each other's results
    a, b = bench.Store(tmp_path / "r.json"), bench.Store(tmp_path / "r.json")
    a.add_standalone("k1", {"val_accuracy": 0.5})
    b.add_standalone("k2", {"val_accuracy": 0.6})
    b.add_run({"config": {"label": "x"}})
    a.add_run({"config": {"label": "y"}})
    record = json.loads((tmp_path / "r.json").read_text())
    assert set(record["standalone"]) == {"k1", "k2"} and len(record["runs"]) == 2
    corr = bench.rank_correlations([1, 2, 3, 4], [1, 2, 4, 3])
    assert corr["kendall_tau"] == pytest.approx(2 / 3) and corr["spearman"] == pytest.approx(0.8)


@pytest.mark.slow
def test_tiny_run_ranks_spos_and_enas_against_two_seeds(tmp_path, capsys):
    bench = load_tool("bench_supernet_ranking")
    out = tmp_path / "ranking.json"
    argv = ["--data", "digits", "--cells", "3", "--channels", "4", "--epochs", "1",
            "--seeds", "0", "1", "--config", "spos:sampling=fair,epochs=1",
            "--config", "enas:epochs=1", "--scoring", "2:100", "--json", str(out), "--report"]
    summary = bench.main(argv)
    assert len(summary["reference"]) == 3 and len(summary["per_seed"]) == 2
    assert -1 <= summary["seed_to_seed"]["kendall_tau"] <= 1
    assert [r["config"]["method"] for r in summary["runs"]] == ["spos", "enas"]
    assert all(len(r["inherited"]) == 3 and "spearman" in r for r in summary["runs"])
    assert "| `enas:epochs=1` | 1 | 2 | 100 |" in capsys.readouterr().out
    # a rerun trains no stand-alone model again (the cache), and adds no runs without --config
    cached = json.loads(out.read_text())["standalone"]
    assert len(cached) == 6
    again = bench.main(["--data", "digits", "--cells", "3", "--channels", "4", "--epochs", "1",
                        "--json", str(out)])
    assert again["reference"] == summary["reference"] and len(again["runs"]) == 2


def test_report_has_the_ceiling_a_row_per_run_and_the_supernet_seed_agreement():
    bench = load_tool("bench_supernet_ranking")
    setting = {"data": "mnist14", "cells": 4, "channels": 8, "cells_per_stage": 1, "epochs": 10,
               "seeds": [0, 1], "batch_size": 64, "cell_seed": 1}
    ref = [0.90, 0.92, 0.94, 0.96]
    summary = {"setting": setting, "reference": ref, "per_seed": [ref, ref[::-1]],
               "seed_to_seed": bench.rank_correlations(ref, ref[::-1])}
    runs = []
    for seed, inherited in ((0, [0.5, 0.6, 0.7, 0.8]), (1, [0.6, 0.5, 0.7, 0.8])):
        config = bench.parse_config(f"spos:optimizer=adam,epochs=80,seed={seed}")
        runs.append({"config": config, "calibration_batches": 4, "eval_samples": 1000,
                     "inherited": inherited, "final_supernet_train_accuracy": 0.9,
                     "supernet_seconds": 100.0, "load_average": 3.0,
                     **bench.rank_correlations(inherited, ref)})
    text = bench.report(summary, runs)
    assert "(the ceiling): Kendall tau **-1.000**" in text
    assert "| `spos:optimizer=adam,epochs=80,seed=0` | 80 | 4 | 1000 | **1.000** |" in text
    assert "Supernet seed 0 vs seed 1" in text and "Kendall tau 0.667 between" in text
    summary["setting"] = {**setting, "seeds": [0, 1, 2, 3]}
    summary["half_to_half"] = bench.rank_correlations(ref, ref)
    text = bench.report(summary, runs)
    assert ("Mean of seeds [0, 1] vs mean of seeds [2, 3] (how well a reference of 2 seeds "
            "repeats): Kendall tau **1.000**") in text


def test_supernets_are_read_against_the_reference_of_the_seeds_asked_for(tmp_path):
    bench = load_tool("bench_supernet_ranking")
    from keras_nas.spaces import NASBench201Space

    space = NASBench201Space(input_shape=(8, 8, 1), num_classes=10, channels=4)
    cells = bench.random_cells(space, 4, seed=1)
    argv = ["--data", "digits", "--cells", "4", "--channels", "4", "--epochs", "1"]
    args = argparse.Namespace(data="digits", channels=4, cells_per_stage=1, epochs=1)
    accuracy = {0: [0.1, 0.2, 0.3, 0.4], 1: [0.2, 0.1, 0.3, 0.4], 2: [0.1, 0.2, 0.4, 0.3],
                3: [0.1, 0.2, 0.3, 0.4]}
    store = bench.Store(tmp_path / "r.json")
    for seed, row in accuracy.items():  # stand-alone results already there: nothing trains
        for arch, acc in zip(cells, row):
            store.add_standalone(bench.standalone_key(args, seed, arch), {"val_accuracy": acc})
    setting = {"data": "digits", "cells": 4, "channels": 4, "cells_per_stage": 1, "epochs": 1,
               "seeds": [0, 1], "batch_size": 64, "cell_seed": 1}
    store.add_run({"config": {"label": "spos"}, "setting": setting, "cells": cells,
                   "inherited": [0.5, 0.6, 0.7, 0.8]})
    two = bench.main(argv + ["--seeds", "0", "1", "--json", str(tmp_path / "r.json")])
    four = bench.main(argv + ["--seeds", "0", "1", "2", "3", "--json", str(tmp_path / "r.json")])
    # The run made with two seeds is read against the four-seed mean too.
    assert len(two["runs"]) == len(four["runs"]) == 1 and "half_to_half" not in two
    assert four["reference"] == pytest.approx([0.125, 0.175, 0.325, 0.375])
    assert four["runs"][0]["kendall_tau"] == pytest.approx(1.0)
    assert two["runs"][0]["kendall_tau"] < 1.0
    assert four["half_to_half"]["kendall_tau"] == pytest.approx(
        bench.rank_correlations([0.15, 0.15, 0.3, 0.4], [0.1, 0.2, 0.35, 0.35])["kendall_tau"])
