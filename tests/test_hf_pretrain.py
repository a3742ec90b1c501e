"""sp-pretrain --arch opt: a transformers OPT trained from scratch on a data-bin's units, for the hf backbone.

Skipped without the optional `transformers`.
"""
import json
import random

import pytest

pytest.importorskip("transformers", reason="sp-pretrain --arch opt needs the optional `transformers`")

from conftest import sp  # noqa: E402
from prompt_fixtures import make_databin  # noqa: E402
from speechprompt.prompting import backbones  # noqa: E402


def counting_rows(n, seed):
    """Unlabelled sentences that count up from a random unit (mod 20), one unit in ten random: a pattern an LM
    learns in a few epochs, and a unigram cannot see."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        start, length = rng.randrange(20), rng.randint(6, 14)
        units = [(start + t) % 20 if rng.random() > 0.1 else rng.randrange(20) for t in range(length)]
        rows.append((f"s{i}", units, None))
    return rows


def test_an_opt_pretrained_here_learns_its_units_and_loads_as_an_hf_backbone(tmp_path):
    data = make_databin(str(tmp_path / "bin"), {"train": counting_rows(300, 1), "valid": counting_rows(40, 2)})
    run = sp("pretrain", data, "--arch", "opt", "--size", "tiny", "--max-epoch", 6, "--lr", 3e-3, "--warmup-updates",
             10, "--max-tokens", 512, "--save-dir", tmp_path / "ulm", "--device", "cpu")
    summary = json.loads((tmp_path / "ulm" / "pretrain.json").read_text())
    assert summary["arch"] == "opt" and summary["units"] == 20 and summary["layers"] == 2
    assert summary["valid_ppl"] < 0.5 * summary["unigram_valid_ppl"], summary  # it learned to count
    assert "valid perplexity" in run.stderr and run.stdout == ""
    config = json.loads((tmp_path / "ulm" / "config.json").read_text())
    assert config["offset"] == 4 and config["vocab_size"] == 24 and config["model_type"] == "opt"
    backbone = backbones.load("hf", str(tmp_path / "ulm" / "config.json"))
    assert backbone.vocab.index("7") == 11 and (backbone.vocab.bos, backbone.vocab.eos) == (0, 2)


def test_units_that_are_not_numbers_are_refused_in_one_line(tmp_path):
    data = make_databin(str(tmp_path / "bin"), {"train": counting_rows(8, 1), "valid": counting_rows(4, 2)})
    (tmp_path / "bin" / "dict.txt").write_text("".join(f"{s} 1\n" for s in [*map(str, range(19)), "a"]))
    bad = sp("pretrain", data, "--arch", "opt", "--size", "tiny", "--save-dir", tmp_path / "ulm", "--device", "cpu",
             check=False)
    error = bad.stderr.strip().splitlines()[-1]
    assert bad.returncode == 1 and error.startswith("sp-pretrain: error: ") and "whole numbers" in error
    assert not (tmp_path / "ulm" / "config.json").exists()
