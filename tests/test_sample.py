"""sp-sample: predictions keyed by id, deterministic, candidate scoring equal to full forwards."""
import json

import torch

from conftest import sp
from prompt_fixtures import TOKEN, TOY_TRAINING, build_lm, make_databin, toy_rows, trained_toy, write_verbalizer
from speechprompt.checkpoints import load_checkpoint
from speechprompt.prompting.model import PromptConfig, PromptLM
from speechprompt.prompting.backbones.fairseq_lm import FairseqLM
from speechprompt.prompting.decoding import Decoder


def read_jsonl(path):
    return [json.loads(line) for line in open(path)]


def test_predictions_keyed_by_id_with_labels_mapped_back(tmp_path_factory):
    toy = trained_toy(tmp_path_factory)
    out = toy.root / "test.jsonl"
    vb = write_verbalizer(str(toy.root / "vb.json"))
    run = sp("sample", toy.data, "--prompt", toy.prompt, "--verbalizer", vb, "-o", out, "--device", "cpu",
             "--batch-size", 7)
    rows = toy_rows(60, 3)
    records = read_jsonl(out)
    assert [r["id"] for r in records] == [uid for uid, _, _ in rows]
    for record, (uid, units, label) in zip(records, rows):
        assert record["units"] == " ".join(map(str, units)) and record["label"] == label
        assert record["prediction"] in TOKEN and set(record["scores"]) == set(TOKEN)
        assert abs(sum(record["scores"].values()) - 1) < 1e-4
        assert record["score"] == max(record["scores"].values())
    assert "one pass" in run.stderr
    assert run.stdout == ""


def test_same_seed_same_predictions(tmp_path_factory, tmp_path):
    toy = trained_toy(tmp_path_factory)
    again = tmp_path / "again.pt"
    sp("train", toy.data, "--base", toy.lm, "-o", again, *TOY_TRAINING, "--seed", 3, "--device", "cpu",
       "--work-dir", tmp_path / "work")
    first, second = load_checkpoint(toy.prompt)["prompt"], load_checkpoint(str(again))["prompt"]
    assert all(torch.equal(first[k], second[k]) for k in first)
    a = sp("sample", toy.data, "--prompt", toy.prompt, "--device", "cpu").stdout
    b = sp("sample", toy.data, "--prompt", again, "--device", "cpu").stdout
    assert a == b and len(a.splitlines()) == 60


def test_skipped_sentences_still_join_by_id(tmp_path_factory, tmp_path):
    toy = trained_toy(tmp_path_factory)
    rows = toy_rows(9, 5)
    rows[4] = (rows[4][0], rows[4][1], None)  # no `<s>`: a bad sentence
    data = make_databin(str(tmp_path / "bin"), {"test": rows})
    bad = sp("sample", data, "--prompt", toy.prompt, "--device", "cpu", check=False)
    assert bad.returncode == 1 and rows[4][0] in bad.stderr and len(bad.stderr.strip().splitlines()[-1]) < 200
    good = sp("sample", data, "--prompt", toy.prompt, "--device", "cpu", "--skip-bad", "-o", tmp_path / "p.jsonl")
    assert "skipped 1 bad sentences" in good.stderr
    records = read_jsonl(tmp_path / "p.jsonl")
    expected = [row for row in rows if row[2] is not None]
    assert [r["id"] for r in records] == [uid for uid, _, _ in expected]
    assert [r["units"] for r in records] == [" ".join(map(str, units)) for _, units, _ in expected]
    reference = tmp_path / "ref.tsv"  # the truth, by id; the skipped id counts as missing
    reference.write_text("".join(f"{uid}\t{' '.join(map(str, u))}\t{TOKEN.get(l, 'yes')}\n" for uid, u, l in rows))
    metrics = json.loads(sp("score", tmp_path / "p.jsonl", "--reference", reference).stdout)
    assert metrics["missing"] == 1 and metrics["n"] == 9


def _brute_force(model, prefix, candidate, dictionary):
    """Sum of log p(candidate tokens, </s>) from one full forward of `prefix + candidate`."""
    tokens = torch.tensor([prefix + candidate])
    with torch.no_grad():
        x, _ = model.features(tokens)
        logp = model.logits(x).log_softmax(-1)[0]
    targets = candidate + [dictionary.eos()]
    return sum(float(logp[len(prefix) - 1 + j, t]) for j, t in enumerate(targets))


def test_multi_token_candidate_scoring_equals_full_forwards(tmp_path):
    from fairseq.data import Dictionary

    base, _ = build_lm(str(tmp_path), normalize_before=True)
    dictionary = Dictionary.load(str(tmp_path / "dict.txt"))
    torch.manual_seed(1)
    backbone = FairseqLM(base, dictionary).freeze()
    model = PromptLM(backbone, PromptConfig(4))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_()
    labels = ["1 2", "2 3", "3 1 2", "4"]
    decoder = Decoder(model, backbone.vocab, labels)
    assert not decoder.one_pass
    eos, sep, idx = dictionary.eos(), dictionary.bos(), dictionary.index
    prefixes = [[eos, idx("5"), idx("9"), sep], [eos, idx("7"), idx("8"), idx("6"), idx("11"), sep]]
    lengths = torch.tensor([len(p) for p in prefixes])
    batch = torch.full((2, 6), dictionary.pad())
    for row, p in enumerate(prefixes):
        batch[row, :len(p)] = torch.tensor(p)
    with torch.no_grad():
        scores = decoder.score(batch, lengths)
    for row, p in enumerate(prefixes):
        for c, label in enumerate(labels):
            expected = _brute_force(model, p, [idx(t) for t in label.split()], dictionary)
            assert abs(float(scores[row, c]) - expected) < 1e-4, (row, label)


def test_linear_verbalizer_decodes_in_one_pass(tmp_path):
    from fairseq.data import Dictionary

    base, _ = build_lm(str(tmp_path))
    dictionary = Dictionary.load(str(tmp_path / "dict.txt"))
    backbone = FairseqLM(base, dictionary).freeze()
    model = PromptLM(backbone, PromptConfig(2, num_classes=3))
    decoder = Decoder(model, backbone.vocab, ["0", "1", "2"])
    assert decoder.one_pass
    batch = torch.tensor([[dictionary.eos(), dictionary.index("9"), dictionary.bos()]])
    with torch.no_grad():
        scores = decoder.score(batch, torch.tensor([3]))
        x, _ = model.features(batch)
        expected = model.verbalizer(model.base.logits(x[:, -1])).log_softmax(-1)
    torch.testing.assert_close(scores, expected)


def test_equal_length_candidates_share_trie_prefixes_and_equal_full_forwards(tmp_path):
    from fairseq.data import Dictionary

    base, _ = build_lm(str(tmp_path), normalize_before=True, learned_pos=True)
    dictionary = Dictionary.load(str(tmp_path / "dict.txt"))
    torch.manual_seed(2)
    backbone = FairseqLM(base, dictionary).freeze()
    model = PromptLM(backbone, PromptConfig(3))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_()
    labels = ["1 2 7", "1 3 7", "1 3 8", "2 1 7", "2 2 2", "3 3 3"]  # spelled labels: one length, shared prefixes
    decoder = Decoder(model, backbone.vocab, labels)
    # run once each: the first tokens 1, 2, 3 and the prefixes 1 2, 1 3, 2 1, 2 2, 3 3 (no end of sequence)
    assert decoder.extra_tokens == 3 + 5 and not decoder.scores_eos
    eos, sep, idx = dictionary.eos(), dictionary.bos(), dictionary.index
    prefixes = [[eos, idx("5"), idx("9"), idx("4"), sep], [eos, idx("7"), sep]]
    lengths = torch.tensor([len(p) for p in prefixes])
    batch = torch.full((2, 5), dictionary.pad())
    for row, p in enumerate(prefixes):
        batch[row, :len(p)] = torch.tensor(p)
    with torch.no_grad():
        scores = decoder.score(batch, lengths)
    for row, p in enumerate(prefixes):
        for c, label in enumerate(labels):
            tokens = torch.tensor([p + [idx(t) for t in label.split()]])
            with torch.no_grad():
                x, _ = model.features(tokens)
                logp = model.logits(x).log_softmax(-1)[0]
            expected = sum(float(logp[len(p) - 1 + j, idx(t)]) for j, t in enumerate(label.split()))
            assert abs(float(scores[row, c]) - expected) < 1e-4, (row, label)


def test_token_batches_respect_both_limits_and_keep_every_sentence():
    from speechprompt.prompting.decoding import token_batches

    items = [(i, torch.zeros(n), None) for i, n in enumerate([3, 40, 7, 7, 100, 12, 5, 60])]
    batches = list(token_batches(items, extra=10, batch_size=3, max_tokens=150))
    assert sorted(i for batch in batches for i, _, _ in batch) == list(range(8))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * (max(len(p) for _, p, _ in batch) + 10) <= 150
    assert [len(b) for b in batches] == [3, 3, 1, 1]  # 3 5 7 | 7 12 40 | 60 | 100 (one item even past the limit)


def test_a_sentence_longer_than_the_ulm_positions_is_one_error_line_naming_the_crop(tmp_path_factory, tmp_path):
    toy = trained_toy(tmp_path_factory)  # its uLM has 128 positions
    rows = toy_rows(6, 8)
    rows[2] = (rows[2][0], [5] * 125 + [1, 1, 1], "yes")  # 128 units + `</s> <s>` + 1 label token: 131 > 128
    data = make_databin(str(tmp_path / "bin"), {"test": rows})
    bad = sp("sample", data, "--prompt", toy.prompt, "--device", "cpu", "-o", tmp_path / "p.jsonl", check=False)
    error = bad.stderr.strip().splitlines()[-1]  # after fairseq's INFO lines, one error line, no traceback
    assert bad.returncode == 1 and error.startswith("sp-sample: error: ") and "Traceback" not in bad.stderr
    assert rows[2][0] in error and "128 units + 1 label tokens + 2 do not fit the uLM's 128 positions" in error
    assert "sp-lmdata --max-units 125" in error
    assert not (tmp_path / "p.jsonl").exists()
    skipped = sp("sample", data, "--prompt", toy.prompt, "--device", "cpu", "--skip-bad")
    assert len(skipped.stdout.splitlines()) == 5 and "skipped 1 bad sentences" in skipped.stderr


def test_a_prompt_checkpoint_from_before_backbone_kinds_decodes_as_fairseqs(tmp_path_factory, tmp_path):
    """Prompt checkpoints written before `base.kind` existed (sp-train on fairseq's trainer) decode unchanged."""
    from prompt_fixtures import trained_toy, write_verbalizer
    from speechprompt.checkpoints import load_checkpoint

    toy = trained_toy(tmp_path_factory)
    old = load_checkpoint(toy.prompt)
    del old["base"]["kind"]
    torch.save(old, tmp_path / "old.pt")
    verbalizer = write_verbalizer(str(tmp_path / "v.json"))
    runs = [sp("sample", toy.data, "--prompt", prompt, "--verbalizer", verbalizer, "--device", "cpu").stdout
            for prompt in (toy.prompt, tmp_path / "old.pt")]
    assert runs[0] == runs[1] and len(runs[0].splitlines()) == 60


def test_a_moved_experiment_decodes_with_base_and_says_which_option_when_not_given(tmp_path):
    """The paths a prompt checkpoint records are hints: after `mv e e2`, `--base` (and `--base-dict`) point at
    the moved uLM; without them, one line names the option to use."""
    from prompt_fixtures import make_databin, make_lm, toy_rows, write_verbalizer

    e = tmp_path / "e"
    lm = make_lm(str(e / "ulm"))
    data = make_databin(str(e / "bin"), {"train": toy_rows(48, 1), "valid": toy_rows(16, 2), "test": toy_rows(20, 3)})
    verbalizer = write_verbalizer(str(e / "verbalizer.json"))
    sp("train", data, "--base", lm, "-o", e / "prompt.pt", "--max-epoch", 1, "--verbalizer", verbalizer,
       "--device", "cpu")
    before = sp("sample", data, "--prompt", e / "prompt.pt", "--verbalizer", verbalizer, "--device", "cpu").stdout
    e2 = tmp_path / "e2"
    e.rename(e2)
    decode = ["sample", e2 / "bin", "--prompt", e2 / "prompt.pt", "--verbalizer", e2 / "verbalizer.json",
              "--device", "cpu"]
    lost = sp(*decode, check=False)
    assert lost.returncode == 1 and "Traceback" not in lost.stderr
    assert lost.stderr.strip().splitlines()[-1] == (
        f"sp-sample: error: {e2}/prompt.pt: the base LM recorded in the prompt, {e}/ulm/lm.pt, is missing (moved?): "
        f"give its path with --base")
    assert sp(*decode, "--base", e2 / "ulm" / "lm.pt").stdout == before  # its dict.txt beside it
    (e2 / "ulm" / "dict.txt").rename(e2 / "dict.txt")
    no_dict = sp(*decode, "--base", e2 / "ulm" / "lm.pt", check=False)
    assert no_dict.returncode == 1 and no_dict.stderr.strip().splitlines()[-1] == (
        f"sp-sample: error: {e2}/prompt.pt: the uLM's dict.txt is not beside {e2}/ulm/lm.pt: give its path with "
        f"--base-dict")
    assert sp(*decode, "--base", e2 / "ulm" / "lm.pt", "--base-dict", e2 / "dict.txt").stdout == before


def test_a_truncated_prompt_checkpoint_is_one_line(tmp_path_factory, tmp_path):
    from prompt_fixtures import trained_toy

    toy = trained_toy(tmp_path_factory)
    cut = tmp_path / "prompt.pt"
    cut.write_bytes(open(toy.prompt, "rb").read()[:-200])
    result = sp("sample", toy.data, "--prompt", cut, "--device", "cpu", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"sp-sample: error: {cut}: refused: truncated, or not a prompt checkpoint")
