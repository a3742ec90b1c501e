"""The pgslm backbone: fairseq's multi-stream transformer_ulm (pGSLM) behind the backbone interface.

- It computes what fairseq's own model computes, from the streams as fairseq's CodeDataset lays them out.
- pGSLM's dictionary (units at 0..n-1, specials after) maps GSLM-style data-bins by symbol, tested on a
  tiny checkpoint built with fairseq's classes and fetched from 127.0.0.1 through an sp-assets bundle
  laid out like the published one (with pGSLM's own F0 bins file).
- The prosody streams are really used: classes whose unit streams are identical and differ only in F0,
  or only in durations, are told apart by the pGSLM prompt and stay at chance with GSLM's.
"""
import json
import os

import numpy as np
import pytest
import torch

from conftest import sp
from prompt_fixtures import (F0_EDGES, build_ulm, make_databin, make_lm, make_ulm, save_ulm, write_streams,
                             write_verbalizer)
from speechprompt.databin import read_split
from speechprompt.prompting import backbones
from speechprompt.prompting.model import PromptConfig, PromptLM
from speechprompt.prosody import CENTS_PER_LOG, NONE, UNVOICED


def ours(backbone, units, dur, f0):
    """The backbone's unit logits for `</s> units` with the units' prosody (the interface's layout)."""
    tokens = torch.cat([torch.tensor([backbone.vocab.eos]), units])[None]
    streams = torch.stack([torch.cat([torch.tensor([0]), dur]), torch.cat([torch.tensor([NONE]), f0])], -1)[None]
    positions = torch.arange(tokens.shape[1])[None]
    mask = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool).tril()
    with torch.no_grad():
        hidden, _ = backbone.run(backbone.layer_input(backbone.embed_tokens(tokens), positions, streams), positions,
                                 mask)
        return backbone.logits(hidden)


def fairseq_inputs(task, units, dur, f0_codes, shifts=(1, 1), f0_pad=0, f0_start=0):
    """`<s> units` and the prosody inputs as fairseq's CodeDataset builds them (shifted, padded)."""
    src = torch.cat([torch.tensor([task.source_dictionary.bos()]), units])[None]
    dur = torch.cat([torch.tensor([0]), dur])
    f0 = torch.cat([torch.tensor([f0_start]), f0_codes])
    shifted = []
    for values, shift, pad in zip((dur, f0), shifts, (0, f0_pad)):
        values = torch.cat([torch.full((shift,), pad, dtype=values.dtype), values])[:len(src[0])]
        shifted.append(values[None])
    return src, *shifted


def sample(n=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    units = torch.randint(0, 20, (n,), generator=g)
    dur = torch.randint(1, 30, (n,), generator=g)
    f0 = torch.randint(-900, 900, (n,), generator=g)
    f0[2] = UNVOICED
    return units, dur, f0


def test_discrete_pgslm_computes_what_fairseq_computes(tmp_path):
    backbone = backbones.load("pgslm", make_ulm(str(tmp_path / "a")))
    model, task, _ = build_ulm(str(tmp_path / "b"))  # the same seed: the same weights
    units, dur, f0 = sample()
    codes = torch.bucketize(f0.float(), torch.tensor(F0_EDGES))
    codes[f0 == UNVOICED] = len(F0_EDGES) + 1  # f0_bins.json's own unvoiced bin
    fd = task.source_f0_dictionary
    src, dur_src, f0_src = fairseq_inputs(task, units, dur.clamp(max=20), codes, f0_pad=fd.pad(), f0_start=fd.bos())
    with torch.no_grad():
        reference = model.eval()(src, dur_src, f0_src)["token"]
    assert torch.allclose(ours(backbone, units, dur, f0), reference, atol=1e-5)
    # every stream counts: another F0, or other durations, give other logits
    assert not torch.allclose(ours(backbone, units, dur, -f0), reference, atol=1e-3)
    assert not torch.allclose(ours(backbone, units, dur + 3, f0), reference, atol=1e-3)


def test_continuous_pgslm_without_shift_computes_what_fairseq_computes(tmp_path):
    backbone = backbones.load("pgslm", make_ulm(str(tmp_path / "a"), discrete=False, shifts="0,0"))
    model, task, _ = build_ulm(str(tmp_path / "b"), discrete=False, shifts="0,0")
    units, dur, f0 = sample()
    log_ratio = torch.where(f0 == UNVOICED, 0.0, f0.float() / CENTS_PER_LOG)
    src, dur_src, f0_src = fairseq_inputs(task, units, dur.float(), log_ratio, shifts=(0, 0), f0_start=0.0)
    with torch.no_grad():
        reference = model.eval()(src, dur_src, f0_src)["token"]
    assert torch.allclose(ours(backbone, units, dur, f0), reference, atol=1e-5)


def test_pgslm_refuses_a_transformer_lm_and_a_databin_without_prosody(tmp_path):
    lm = make_lm(str(tmp_path / "lm"))
    with pytest.raises(Exception, match="not a multi-stream transformer_ulm"):
        backbones.read_shape("pgslm", lm)
    ulm = make_ulm(str(tmp_path / "ulm"))
    data = make_databin(str(tmp_path / "bin"), {"train": [("a", [4, 5], "yes")], "valid": [("b", [4], "no")]})
    result = sp("train", data, "--base", ulm, "--backbone", "pgslm", "-o", tmp_path / "p.pt", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"sp-train: error: {data}: the pgslm backbone reads each unit's duration and F0, and this data-bin has no "
        "prosody streams (SPLIT.dur, SPLIT.f0): make its units with sp-dedup --durations and sp-f0 (Make: "
        "BACKBONE=pgslm does)")


def test_trainable_values_at_gslm_size(tmp_path):
    """The prompt of a 12 x 1024 pGSLM: the same prompt parts as GSLM's, the prosody embeddings frozen."""
    model, _task, cfg = build_ulm(str(tmp_path), layers=12, dim=1024, heads=16, ffn=8, units=100)
    path = save_ulm(model, cfg, str(tmp_path / "big.pt"))
    (tmp_path / "f0_bins.json").write_text(json.dumps({"format": "speechprompt-f0-bins/1", "edges_cents": F0_EDGES,
                                                        "unvoiced": "symbol"}))
    del model
    prompt = PromptLM(backbones.load("pgslm", str(path)), PromptConfig(prompt_length=5))
    assert prompt.trainable_count() == 5 * 1024 + 12 * 2 * 5 * 1024 + 1024 == 129_024 <= 150_000


# ------------------------------------------- published layout, served locally
@pytest.fixture
def published(tmp_path):
    """A tiny discrete pGSLM and pGSLM-style F0 bins (`{32: natural-log edges}`), served from 127.0.0.1 under the
    paths of the published checkpoint and bins, fetched through the built-in bundle pgslm-hubert100-discrete."""
    from test_assets import Server

    ulm = make_ulm(str(tmp_path / "made"), unvoiced_bin=False, units=100)
    bins = tmp_path / "made" / "mean_norm_log_f0_seg_bin.th"
    torch.save({32: np.array(F0_EDGES) / CENTS_PER_LOG}, bins)
    paths = {"ulm": "textless_nlp/pgslm/ulm_checkpoints/discrete_prosody_shift_1_1.pt",
             "f0_bins": "textless_nlp/pgslm/vocoder/blizzard2013/mean_norm_log_f0_seg_bin.th"}
    server = Server({paths["ulm"]: open(ulm, "rb").read(), paths["f0_bins"]: bins.read_bytes()})
    try:
        got = sp("assets", "get", "pgslm-hubert100-discrete", "ulm", "f0_bins", "--mirror", server.url, "--cache",
                 tmp_path / "cache").stdout
        make = sp("assets", "get", "pgslm-hubert100-discrete", "ulm", "f0_bins", "--format", "make", "--mirror",
                  server.url, "--cache", tmp_path / "cache").stdout
    finally:
        server.close()
    fetched = dict(line.split("\t") for line in got.splitlines())
    assert fetched["ulm"] == str(tmp_path / "cache" / paths["ulm"])
    assert "BACKBONE := pgslm" in make or "BACKBONE = pgslm" in make, make
    return fetched, make


def test_pgslm_dictionary_maps_gslm_databins_by_symbol(tmp_path, published):
    fetched, _make = published
    backbone = backbones.load("pgslm", fetched["ulm"], fetched["f0_bins"])
    vocab = backbone.vocab
    assert [vocab.index(str(u)) for u in (0, 5, 99)] == [0, 5, 99]  # units first...
    assert (vocab.bos, vocab.pad, vocab.eos, vocab.unk) == (100, 101, 102, 103)  # ...the specials after
    assert vocab.units == (0, 100)
    # a data-bin binarised with GSLM's dict.txt (`<s> <pad> </s> <unk>` first, unit u at u + 4) reads as pGSLM's ids
    data = tmp_path / "bin"
    make_databin(str(data), {"train": [("a", [7, 0, 19], "yes")]})
    with open(data / "dict.txt") as f:
        assert f.readline().split()[0] == "0"  # the data-bin's dictionary: GSLM's form
    from fairseq.data import Dictionary
    assert Dictionary.load(str(data / "dict.txt")).index("7") == 11  # unit 7 at 11 in the data-bin
    sentence = read_split(str(data), "train", vocab.index).sentences[0]
    assert sentence.tolist() == [7, 0, 19, vocab.bos, 1, vocab.eos]  # `7 0 19 <s> 1 </s>` in pGSLM's ids
    # pGSLM's own bins (natural log, no unvoiced bin): unvoiced reads as the speaker's mean, as pGSLM leaves it
    edges, own_unvoiced = __import__("speechprompt.prompting.backbones.pgslm", fromlist=["read_bins"]).read_bins(
        fetched["f0_bins"])
    assert not own_unvoiced and edges == pytest.approx(F0_EDGES)
    unvoiced, none, pad = backbone.f0_codes
    assert unvoiced == int(np.searchsorted(F0_EDGES, 0.0)) and (none, pad) == (32, 33)


def test_pgslm_from_the_bundle_computes_what_fairseq_computes(tmp_path, published):
    fetched, _make = published
    backbone = backbones.load("pgslm", fetched["ulm"], fetched["f0_bins"])
    model, task, _ = build_ulm(str(tmp_path / "b"), unvoiced_bin=False, units=100)
    units, dur, f0 = sample()
    voiced = torch.where(f0 == UNVOICED, 0, f0)  # pGSLM: an unvoiced unit's log-ratio is 0
    codes = torch.bucketize(voiced.float(), torch.tensor(F0_EDGES))
    fd = task.source_f0_dictionary
    src, dur_src, f0_src = fairseq_inputs(task, units, dur.clamp(max=20), codes, f0_pad=fd.pad(), f0_start=fd.bos())
    with torch.no_grad():
        reference = model.eval()(src, dur_src, f0_src)["token"]
    assert torch.allclose(ours(backbone, units, dur, f0), reference, atol=1e-5)


# ------------------------------------------------- the prosody is really used
def pairs(n, seed, contrast):
    """Utterances in pairs with the same units: one `yes`, one `no`, differing only in F0 (`f0`: a rising or a
    falling contour) or only in durations (`durations`: short or long units)."""
    rng = np.random.default_rng(seed)
    rows, streams = [], []
    for i in range(n):
        units = rng.integers(4, 20, rng.integers(6, 12)).tolist()
        dur = rng.integers(1, 4, len(units))
        ramp = np.linspace(-500, 500, len(units))
        noise = rng.normal(0, 100, len(units))
        for label, sign in (("yes", 1), ("no", -1)):
            if contrast == "f0":
                d, f = dur, np.rint(sign * ramp + noise).astype(int)
            else:
                d, f = (dur if sign > 0 else dur + 8), np.rint(noise).astype(int)
            rows.append((f"{label}{i:03d}", units, label))
            streams.append(np.stack([np.concatenate([d, [0, 0, 0]]), np.concatenate([f, [NONE] * 3])], 1))
    return rows, streams


@pytest.mark.parametrize("contrast", ["f0", "durations"])
def test_prosody_streams_are_used(tmp_path, contrast):
    splits = {"train": pairs(120, 1, contrast), "valid": pairs(30, 2, contrast), "test": pairs(40, 3, contrast)}
    data = make_databin(str(tmp_path / "bin"), {s: rows for s, (rows, _) in splits.items()})
    for split, (_, streams) in splits.items():
        write_streams(data, split, streams)
    verbalizer = write_verbalizer(str(tmp_path / "v.json"))
    ulm = make_ulm(str(tmp_path / "ulm"), prosody_scale=10.0)  # prosody counts as much as a trained pGSLM makes it
    lm = make_lm(str(tmp_path / "lm"), normalize_before=True)
    accuracy = {}
    for kind, base in (("pgslm", ulm), ("fairseq", lm)):
        prompt = tmp_path / f"{kind}.pt"
        sp("train", data, "--base", base, "--backbone", kind, "--verbalizer", verbalizer, "-o", prompt,
           "--max-epoch", 60, "--patience", 10, "--batch-size", 16, "--prompt-length", 5, "--lr", 5e-2,
           "--device", "cpu", "--threads", 1)
        out = tmp_path / f"{kind}.jsonl"
        sp("sample", data, "--prompt", prompt, "--verbalizer", verbalizer, "--device", "cpu", "--threads", 1, "-o", out)
        predictions = [json.loads(line) for line in out.read_text().splitlines()]
        accuracy[kind] = np.mean([p["prediction"] == p["label"] for p in predictions])
    assert accuracy["pgslm"] >= 0.95, accuracy
    assert accuracy["fairseq"] == 0.5, accuracy  # the same units in each pair: one of the two is wrong


# --------------------------------------------------- sp-pretrain --arch pgslm
def test_pretrain_pgslm_from_a_databin_with_prosody(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 120), ("valid", 30)):
        rows = []
        for i in range(n):
            length = int(rng.integers(5, 20))
            f0 = ["u" if rng.random() < 0.2 else str(int(v)) for v in rng.normal(0, 300, length)]
            rows.append(f"{split}{i}\t{' '.join(map(str, rng.integers(0, 20, length)))}\tx\t"
                        f"{' '.join(map(str, rng.integers(1, 8, length)))}\t{' '.join(f0)}")
        (tmp_path / f"{split}.tsv").write_text("\n".join(rows) + "\n")
        sp("lmdata", "--no-label", tmp_path / f"{split}.tsv", "-o", tmp_path / f"{split}.txt")
    sp("binarize", "--units", 20, "--out", tmp_path / "bin", f"train={tmp_path / 'train.txt'}",
       f"valid={tmp_path / 'valid.txt'}")
    run = sp("pretrain", tmp_path / "bin", "--arch", "pgslm", "--size", "tiny", "--max-epoch", 1, "--device", "cpu",
             "--threads", 1, "--save-dir", tmp_path / "ulm")
    assert "--task speech_unit_modeling" in run.stderr and "--stream-shifts 1,1" in run.stderr
    summary = json.loads((tmp_path / "ulm" / "pretrain.json").read_text())
    assert summary["arch"] == "pgslm" and np.isfinite(summary["valid_ppl"])
    # the backbone reads the checkpoint as fairseq trained it: fairseq's valid token loss (nats over its source
    # tokens, one more a sentence than the targets with shift 1) is the unit perplexity sp-pretrain reports
    import re
    token_loss = float(re.findall(r"valid on 'valid' subset \| .*?token_loss ([0-9.]+)", run.stderr)[-1])
    sentences = len((tmp_path / "valid.txt").read_text().splitlines())
    targets = summary["valid_tokens"]  # units and </s>
    assert summary["valid_ppl"] == pytest.approx(np.exp(token_loss * (targets + sentences) / targets), rel=2e-3)
    bins = json.loads((tmp_path / "ulm" / "f0_bins.json").read_text())
    assert len(bins["edges_cents"]) == 31 and bins["edges_cents"] == sorted(bins["edges_cents"])
    backbone = backbones.load("pgslm", str(tmp_path / "ulm" / "checkpoint_best.pt"))  # f0_bins.json beside it
    assert backbone.vocab.units == (0, 20) and backbone.shape.layers == 2 and backbone.f0_codes[0] == 32
    # a data-bin without prosody streams: one line
    plain = tmp_path / "plain"
    sp("binarize", "--units", 20, "--out", plain, f"train={tmp_path / 'train.txt'}", f"valid={tmp_path / 'valid.txt'}")
    for split in ("train", "valid"):
        for name in ("dur", "f0"):
            for ext in ("bin", "idx"):
                os.unlink(plain / f"{split}.{name}.{ext}")
    result = sp("pretrain", plain, "--arch", "pgslm", "--size", "tiny", "--device", "cpu", "--save-dir",
                tmp_path / "none", check=False)
    assert result.returncode == 1 and "the train split has no prosody streams" in result.stderr.splitlines()[-1]


def test_streams_ride_with_their_tokens_into_batches_and_graph_padding():
    """make_batches puts each sentence's prosody after the `</s>` that starts it; pad_for_graphs (CUDA graphs'
    few shapes) pads the streams with the values of no unit, as it pads the tokens."""
    from speechprompt.prompting.backbones.pgslm import _vocabulary
    from speechprompt.prompting.batches import make_batches
    from speechprompt.prompting.graphs import pad_for_graphs

    vocab = _vocabulary(20)
    sentences = [torch.tensor([3, 4, 5, vocab.bos, 7, vocab.eos]), torch.tensor([9, vocab.bos, 8, vocab.eos])]
    streams = [torch.tensor([[2, 10], [1, UNVOICED], [3, -40], [0, NONE], [0, NONE], [0, NONE]]),
               torch.tensor([[5, 300], [0, NONE], [0, NONE], [0, NONE]])]
    batch = make_batches(sentences, vocab, 8, 4096, streams=streams)[0]
    assert batch.tokens.shape == (2, 6) and batch.streams.shape == (2, 6, 2)
    row = [i for i in range(2) if batch.tokens[i, 1] == 3][0]
    assert batch.streams[row, :, 0].tolist() == [0, 2, 1, 3, 0, 0]  # `</s>` first: no prosody
    assert batch.streams[row, :, 1].tolist() == [NONE, 10, UNVOICED, -40, NONE, NONE]
    padded = pad_for_graphs([batch], vocab.pad, multiple=8)[0]
    assert padded.tokens.shape == (2, 8) and padded.streams.shape == (2, 8, 2)
    assert torch.equal(padded.streams[:, :6], batch.streams)
    assert (padded.streams[:, 6:, 0] == 0).all() and (padded.streams[:, 6:, 1] == NONE).all()
