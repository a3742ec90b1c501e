"""sp-train and the PromptLM: fairseq equivalence, frozen base, trainable count, loss, checkpoint."""
import dataclasses
import os
import re

import numpy as np
import pytest
import torch

from conftest import sp
from prompt_fixtures import assert_same_as_every_row, build_lm, make_databin, make_lm, toy_rows, trained_toy
from speechprompt.checkpoints import load_checkpoint, load_lm
from speechprompt.io import file_hash
from speechprompt.databin import load_dictionary, read_split
from speechprompt.prompting import backbones
from speechprompt.prompting.backbones.fairseq_lm import FairseqLM
from speechprompt.prompting.labels import label_tokens
from speechprompt.prompting.batches import make_batches
from speechprompt.prompting.loop import batch_loss
from speechprompt.prompting.model import PromptConfig, PromptLM


def backbone_of(base, directory):
    """A fairseq model built by the tests, as a frozen backbone (its dict.txt is in `directory`)."""
    return FairseqLM(base, load_dictionary(os.path.join(directory, "dict.txt"))).freeze()


def train_log(stderr: str) -> list[dict]:
    """sp-train's line at each validation: epoch, update, train loss, lr, valid accuracy."""
    pattern = r"epoch (\d+) update (\d+): train loss ([\d.]+), lr ([\d.e-]+); valid accuracy ([\d.]+)"
    return [dict(zip(("epoch", "update", "loss", "lr", "valid"), map(float, m)))
            for m in re.findall(pattern, stderr)]


@pytest.mark.parametrize("normalize_before,learned_pos,io_dim", [(False, False, None), (True, True, None),
                                                                 (True, False, 48)])
def test_prompts_off_forward_equals_fairseq(tmp_path, normalize_before, learned_pos, io_dim):
    base, _ = build_lm(str(tmp_path), normalize_before=normalize_before, learned_pos=learned_pos, io_dim=io_dim)
    base.eval()
    model = PromptLM(backbone_of(base, tmp_path), PromptConfig(5, deep=False, input_prompt=False, separator=False))
    tokens = torch.randint(4, 24, (3, 11))
    tokens[1, 7:] = base.decoder.padding_idx  # right padding: compare the real positions
    with torch.no_grad():
        ours = model.logits(model.features(tokens)[0])
        theirs = base(tokens)[0]
    real = tokens.ne(base.decoder.padding_idx)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours[real], theirs[real], atol=1e-5, rtol=1e-5)


def test_kv_cache_continuation_equals_full_forward(tmp_path):
    base, _ = build_lm(str(tmp_path), normalize_before=True)
    model = PromptLM(backbone_of(base, tmp_path), PromptConfig(3, deep=True, input_prompt=True, separator=True))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_()
        tokens = torch.randint(4, 24, (2, 10))
        tokens[:, 4] = 0  # a separator inside the prefix
        full, _ = model.features(tokens)
        _, cache = model.features(tokens[:, :6])
        valid = torch.ones(2, 3 + 6, dtype=torch.bool)
        rest, _ = model.features(tokens[:, 6:], cache, valid, torch.full((2,), 6))
    torch.testing.assert_close(rest, full[:, 6:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("normalize_before", [False, True])
def test_the_input_prompt_run_once_for_a_batch_equals_it_run_in_every_row(tmp_path, normalize_before):
    base, _ = build_lm(str(tmp_path), normalize_before=normalize_before)
    model = PromptLM(backbone_of(base, tmp_path), PromptConfig(3, deep=True, input_prompt=True, separator=True))
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_()
    tokens = torch.randint(4, 24, (4, 9))
    tokens[:, 6] = model.sep_index
    tokens[2, 7:] = base.decoder.padding_idx
    assert_same_as_every_row(model.train(), tokens)


def test_trainable_count_at_gslm_size(tmp_path):
    base, _ = build_lm(str(tmp_path), layers=12, dim=1024, heads=16, ffn=8)
    model = PromptLM(backbone_of(base, tmp_path), PromptConfig(5, deep=True, input_prompt=True, separator=True))
    assert model.trainable_count() == 129_024
    assert all(not p.requires_grad for p in base.parameters())
    shallow = PromptLM(backbone_of(base, tmp_path), PromptConfig(5, deep=False, input_prompt=True, separator=True))
    assert shallow.trainable_count() == 5 * 1024 + 1024


def test_prompt_tuning_updates_only_prompts_and_loss_goes_down(tmp_path):
    lm = make_lm(str(tmp_path / "lm"), normalize_before=True)
    data = make_databin(str(tmp_path / "bin"), {"train": toy_rows(96, 1)})
    backbone = backbones.load("fairseq", lm)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    torch.manual_seed(0)
    model = PromptLM(backbone, PromptConfig(5)).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=2e-2)
    batches = make_batches(read_split(data, "train", backbone.vocab.index).sentences, backbone.vocab, 16, 4096)
    losses = []
    for _epoch in range(4):
        total = 0.0
        for batch in batches:
            loss = batch_loss(model, batch)
            optimizer.zero_grad()
            (loss / batch.count).backward()
            optimizer.step()
            total += float(loss)
        losses.append(total)
    assert losses[-1] < 0.9 * losses[0], losses
    assert all(p.grad is None for p in backbone.parameters())  # no gradient ever reached the frozen weights
    after = backbone.state_dict()
    for key, tensor in before.items():
        assert torch.equal(tensor, after[key]), key
    assert set(model.prompt_state()) == {"input_prompt", "deep_prompt", "separator"}


def test_sp_train_checkpoint_holds_prompts_and_base_file_is_untouched(tmp_path_factory):
    toy = trained_toy(tmp_path_factory)
    assert file_hash(toy.lm) == toy.hash_before
    ckpt = load_checkpoint(toy.prompt)
    assert set(ckpt["prompt"]) == {"input_prompt", "deep_prompt", "separator"}
    assert ckpt["base"]["sha256"] == toy.hash_before and ckpt["base"]["path"].endswith("lm.pt")
    assert ckpt["config"] == dataclasses.asdict(PromptConfig(prompt_length=5, deep=True))  # the one config, as it is
    assert ckpt["training"] == {"lr": 2e-2, "lr_schedule": "fixed", "batch_size": 16, "processes": 1, "update_freq": 1,
                                "seed": 3}
    assert sorted(ckpt["labels"]) == ["1", "2", "3"]  # the verbalized train labels: decoding candidates
    trained = ckpt["prompt"]["separator"]
    base, _ = load_lm(toy.lm)
    assert not torch.equal(trained, base.decoder.embed_tokens.weight[0])  # the separator did learn
    assert "trainable parameters: 832" in toy.log  # 5*32 + 2*2*5*32 + 32
    assert toy.stdout == ""  # logs go to stderr
    assert ckpt["base"]["kind"] == "fairseq"


def test_sp_train_loss_goes_down_in_its_log(tmp_path_factory):
    toy = trained_toy(tmp_path_factory)
    epochs = [line["loss"] for line in train_log(toy.log)]
    assert len(epochs) == 3 and epochs[-1] < epochs[0], epochs


def test_half_precision_needs_a_gpu(tmp_path):
    data = make_databin(str(tmp_path / "bin"), {"train": toy_rows(8), "valid": toy_rows(4)})
    lm = make_lm(str(tmp_path / "lm"))
    result = sp("train", data, "--base", lm, "-o", tmp_path / "p.pt", "--device", "cpu", "--precision", "fp16",
                check=False)
    assert result.returncode == 2 and "needs a GPU" in result.stderr
    assert not (tmp_path / "p.pt").exists()


def test_a_batch_targets_only_the_label_and_eos(tmp_path):
    data = make_databin(str(tmp_path / "bin"), {"train": [("a", [5, 6, 7], "yes no")]})
    dictionary = load_dictionary(f"{data}/dict.txt")
    vocab = backbones.fairseq_lm.vocabulary_of(dictionary)
    split = read_split(data, "train", vocab.index)
    batch = make_batches(split.sentences, vocab, 16, 4096)[0]
    index = dictionary.index
    assert split.ids == ["a"]
    assert batch.tokens[0].tolist() == [dictionary.eos(), index("5"), index("6"), index("7"), dictionary.bos(),
                                        index("1"), index("2")]
    # predicted at <s> and after each label token: the label tokens, then </s>
    assert batch.where.tolist() == [4, 5, 6] and batch.gold.tolist() == [index("1"), index("2"), dictionary.eos()]
    assert batch.count == 3 and batch.row.tolist() == [0, 0, 0]


def test_linear_lr_schedule_decays_to_zero_at_the_last_epoch(tmp_path):
    rows = toy_rows(64) + [(f"bad{i}", [5, 6], None) for i in range(16)]  # skipped: not counted as updates
    data = make_databin(str(tmp_path / "bin"), {"train": rows, "valid": toy_rows(8, 1)})
    lm = make_lm(str(tmp_path / "lm"))
    run = sp("train", data, "--base", lm, "-o", tmp_path / "p.pt", "--max-epoch", 3, "--batch-size", 16, "--skip-bad",
             "--lr", 0.01, "--lr-schedule", "linear", "--warmup-updates", 2, "--patience", -1, "--device", "cpu")
    lrs = [line["lr"] for line in train_log(run.stderr)]  # the lr of each epoch's last update
    assert len(lrs) == 3 and lrs[0] > lrs[1] > lrs[2] > 0, lrs  # 4 updates an epoch, 12 in all
    assert lrs[2] == pytest.approx(0.01 * (1 - 10 / 10)  + 0.01 / 10, abs=1e-9)  # the last update's: 1/10 of the peak
    assert load_checkpoint(tmp_path / "p.pt")["training"]["lr_schedule"] == "linear"


def test_warmup_without_the_linear_schedule_is_a_usage_error(tmp_path):
    data = make_databin(str(tmp_path / "bin"), {"train": toy_rows(8), "valid": toy_rows(4)})
    lm = make_lm(str(tmp_path / "lm"))
    result = sp("train", data, "--base", lm, "-o", tmp_path / "p.pt", "--warmup-updates", 10, "--device", "cpu",
                check=False)
    assert result.returncode == 2 and "--warmup-updates needs --lr-schedule linear" in result.stderr
    assert not (tmp_path / "p.pt").exists()


def test_lm_positions_from_the_checkpoint_equal_the_built_model(tmp_path):
    from speechprompt.checkpoints import lm_positions

    for learned in (False, True):
        lm = make_lm(str(tmp_path / f"lm{learned}"), learned_pos=learned)
        assert lm_positions(lm) == load_lm(lm)[0].max_positions() == 128


def test_sp_train_refuses_a_sentence_longer_than_the_ulm_positions_in_one_line(tmp_path):
    lm = make_lm(str(tmp_path / "lm"), learned_pos=True)  # 128 learned positions: longer is an index error
    valid = toy_rows(8, 2)
    valid[3] = (valid[3][0], [7] * 130, "no")
    data = make_databin(str(tmp_path / "bin"), {"train": toy_rows(16, 1), "valid": valid})
    bad = sp("train", data, "--base", lm, "-o", tmp_path / "p.pt", "--device", "cpu", check=False)
    error = bad.stderr.strip().splitlines()[-1]  # one error line, no traceback
    assert bad.returncode == 1 and error.startswith("sp-train: error: ") and "Traceback" not in bad.stderr
    assert f"valid:4 ({valid[3][0]})" in error and "133 tokens" in error
    assert "sp-lmdata --max-units 125" in error and not (tmp_path / "p.pt").exists()


def test_an_older_checkpoints_config_dict_still_reads():
    old = dict(prompt_length=10, deep=True, input_prompt=False, separator=True, num_classes=0, finetune=False,
               lr=0.03, lr_schedule="fixed", batch_size=32, seed=1)  # training settings were kept beside it
    assert PromptConfig.from_dict(old) == PromptConfig(10, input_prompt=False)


def test_split_at_the_separator():
    bos, eos = 0, 2
    units, label = label_tokens(torch.tensor([7, 8, 0, 9, 10, 2]), bos, eos)
    assert units.tolist() == [7, 8] and label.tolist() == [9, 10]
    assert label_tokens(torch.tensor([7, 0, 2]), bos, eos)[1].tolist() == []  # no label
    assert label_tokens(torch.tensor([7, 8, 2]), bos, eos) is None and label_tokens(torch.tensor([0, 7, 0, 2]), bos, eos) is None


def test_patience_waits_while_valid_accuracy_is_at_chance():
    from speechprompt.prompting.stopping import EarlyStop, chance_level

    assert chance_level(["a"] * 25 + ["b"] * 40 + ["c"] * 35) == pytest.approx(0.40 + 2 * np.sqrt(0.4 * 0.6 / 100))
    stop = EarlyStop(patience=2, chance=0.4)
    # flat at chance for five validations: plain patience 2 would have stopped at the third
    assert not any(stop.update(a) for a in [0.30, 0.35, 0.33, 0.34, 0.31])
    assert [stop.update(a) for a in [0.6, 0.8, 0.8, 0.79]] == [False, False, False, True]
    assert (stop.best, stop.best_validation, stop.validations) == (0.8, 7, 9)
    assert not any(EarlyStop(patience=0).update(a) for a in [0.9, 0.1, 0.1, 0.1])  # 0: never stops


def test_lr_and_prompt_length_auto_follow_the_ulm_width(tmp_path):
    from speechprompt.prompting.defaults import auto_lr, auto_prompt_length

    assert auto_lr(128) == 0.03 and auto_lr(1024) == 0.005  # the measured anchors
    assert auto_lr(64) == 0.03 and auto_lr(4096) == 0.005  # held outside them
    assert 0.03 > auto_lr(256) > auto_lr(512) > auto_lr(768) > 0.005
    assert auto_prompt_length(128) == 10 and auto_prompt_length(1024) == 5  # its anchors
    assert auto_prompt_length(64) == 10 and auto_prompt_length(4096) == 5
    assert [auto_prompt_length(d) for d in (256, 512, 768)] == [8, 6, 6]
    shape = backbones.read_shape("fairseq", make_lm(str(tmp_path / "lm"), layers=3, dim=48, heads=4))
    assert (shape.layers, shape.embed_dim, shape.heads, shape.head_dim, shape.max_positions) == (3, 48, 4, 12, 128)


def test_epoch_cap_auto_gives_a_small_train_split_enough_updates():
    from speechprompt.prompting.defaults import auto_epoch_bound, auto_epochs

    assert auto_epochs(1600) == 30 and auto_epochs(100) == 30  # a large split: 30 epochs
    assert auto_epochs(70) == 43 and auto_epochs(26) == 116  # a small one: 3,000 updates
    assert auto_epoch_bound(1600) == 90 and auto_epoch_bound(70) == 129  # once above chance: three times that


def plateau_rows(n: int, seed: int):
    """A task a prompt learns fully, then cannot improve on: the units are the class marker, repeated."""
    import random

    rng = random.Random(seed)
    return [(f"u{i}", [c + 1] * rng.randint(3, 6), ("yes", "no", "up")[c]) for i in range(n) for c in [rng.randrange(3)]]


def plateau_run(tmp_path, *args):
    lm = make_lm(str(tmp_path / "lm"), normalize_before=True)
    data = make_databin(str(tmp_path / "bin"), {"train": plateau_rows(96, 1), "valid": plateau_rows(32, 2)})
    return sp("train", data, "--base", lm, "-o", tmp_path / "prompt.pt", "--batch-size", 16, "--seed", 3,
              "--device", "cpu", *args)


def test_a_run_that_plateaus_stops_by_patience_and_says_so(tmp_path):
    import json

    # --lr auto, --prompt-length auto: 0.03 and 10 vectors for 32 dimensions
    run = plateau_run(tmp_path, "--max-epoch", 60, "--patience", 2)
    stop = load_checkpoint(tmp_path / "prompt.pt")["stop"]
    assert stop["reason"] == "patience" and stop["epoch"] < 60
    assert stop["best_valid_accuracy"] > stop["chance"] and stop["validations"] == stop["best_validation"] + 2
    # it started at chance (one label for all): plain patience 2 would have stopped there, before it learned
    valid = [line["valid"] for line in train_log(run.stderr)]
    best, waited, plain_stop = valid[0], 0, None
    for n, accuracy in enumerate(valid[1:], 2):
        best, waited = (accuracy, 0) if accuracy > best else (best, waited + 1)
        if waited == 2:
            plain_stop = n
            break
    assert plain_stop is not None and max(valid[:plain_stop]) <= stop["chance"] < stop["best_valid_accuracy"]
    assert stop["best_validation"] > plain_stop
    assert f"sp-train: stopped: patience (epoch {stop['epoch']}, " in run.stderr
    assert "lr auto: 0.03 for a uLM of 2 x 32" in run.stderr
    assert "prompt length auto: 10 for a uLM of 2 x 32" in run.stderr
    summary = json.loads((tmp_path / "prompt.json").read_text())
    assert summary["stop"] == stop and summary["lr"] == 0.03
    assert summary["trainable"] == 10 * 32 + 2 * 2 * 10 * 32 + 32 and summary["config"]["prompt_length"] == 10


@pytest.mark.parametrize("cap,reason", [(["--max-update", 3], "max update"), (["--max-time", "0.01s"], "time cap"),
                                        (["--max-epoch", 1], "max epoch")])
def test_caps_stop_the_run_and_the_log_says_which(tmp_path, cap, reason):
    run = plateau_run(tmp_path, "--max-epoch", 50, "--patience", 0, *cap)
    stop = load_checkpoint(tmp_path / "prompt.pt")["stop"]
    assert stop["reason"] == reason and f"sp-train: stopped: {reason} (" in run.stderr
    if reason == "time cap":  # 0.01 s: after the first update or two, however loaded the machine
        assert 1 <= stop["updates"] < 6
    else:
        assert stop["updates"] == {"max update": 3, "max epoch": 6}[reason]  # 96 sentences, 16 a batch


def test_the_epoch_cap_is_auto_by_default_and_says_what_it_chose(tmp_path):
    run = plateau_run(tmp_path, "--patience", 0, "--max-update", 3)
    assert ("max epoch auto: 500 while at chance (30, or enough for 3,000 updates at 6 an epoch), 1500 once "
            "above it; patience decides") in run.stderr  # 96 / 16 a batch
    assert load_checkpoint(tmp_path / "prompt.pt")["stop"]["reason"] == "max update"


@pytest.mark.parametrize("option,value,message", [("--lr", "fast", "neither a number nor 'auto'"),
                                                  ("--max-epoch", "soon", "neither a whole number nor 'auto'"),
                                                  ("--max-time", "5x", "not a duration")])
def test_bad_lr_or_time_cap_is_a_usage_error(tmp_path, option, value, message):
    data = make_databin(str(tmp_path / "bin"), {"train": toy_rows(8), "valid": toy_rows(4)})
    lm = make_lm(str(tmp_path / "lm"))
    result = sp("train", data, "--base", lm, "-o", tmp_path / "p.pt", option, value, check=False)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_valid_accuracy_chooses_among_the_candidate_labels_as_decoding_does():
    """A label token counts as right when it is the likeliest of the tokens a train label may have there, even
    if another token of the vocabulary is likelier (seen on a GSLM-sized uLM early in tuning: accuracy 0
    over the vocabulary, 0.14 decoded); a label that no train label has never counts."""
    from speechprompt.prompting.labels import CandidateSteps
    from speechprompt.prompting.batches import Batch
    from speechprompt.prompting.loop import correct_sentences

    eos, vocab = 2, 12
    # train labels: (4,), (5,), (6, 7), (6, 8); so after 6 comes 7 or 8, after (4,) only </s>
    steps = CandidateSteps([(4,), (5,), (6, 7), (6, 8)], eos, vocab)
    allowed = steps.allowed([[6, 8, eos], [9, eos]], "cpu")
    assert [row.nonzero().flatten().tolist() for row in allowed] == [[4, 5, 6], [7, 8], [eos], [4, 5, 6], []]

    rows = [[4, eos], [6, 8, eos], [9, eos]]  # the targets of three sentences
    gold = torch.tensor([t for row in rows for t in row])
    logits = torch.full((len(gold), vocab), -5.0)
    logits[torch.arange(len(gold)), gold] = 0.0  # gold is the likeliest of the candidates' tokens...
    logits[:, 10] = 1.0  # ...and token 10, which no label has, the likeliest of all

    def model(tokens, where):  # only the accuracy is under test: these are the model's label logits
        return logits
    row = torch.tensor([b for b, r in enumerate(rows) for _ in r])
    batch = Batch(torch.zeros(3, 4, dtype=torch.long), torch.arange(len(gold)), gold, row, len(gold), 3,
                  steps.allowed(rows, "cpu"))
    assert int(correct_sentences(model, batch)) == 2  # the two train labels; label 9 is no candidate
    batch.allowed = None  # over the whole vocabulary: token 10 wins everywhere
    assert int(correct_sentences(model, batch)) == 0


def test_batches_padded_for_cuda_graphs_give_the_same_loss_and_gradients(tmp_path):
    """Padding to a few shapes (graphs.pad_for_graphs) changes no target: the padded positions and targets add
    nothing to the loss or its gradient."""
    from speechprompt.prompting.graphs import pad_for_graphs

    lm = make_lm(str(tmp_path / "lm"), normalize_before=True)
    rows = toy_rows(40, 1) + [("long", [5] * 9, "yes no")]  # a two-token label: rows differ in their targets
    data = make_databin(str(tmp_path / "bin"), {"train": rows})
    backbone = backbones.load("fairseq", lm)
    torch.manual_seed(0)
    model = PromptLM(backbone, PromptConfig(3)).train()
    batches = make_batches(read_split(data, "train", backbone.vocab.index).sentences, backbone.vocab, 8, 4096)
    padded = pad_for_graphs(batches, backbone.vocab.pad, multiple=16)
    assert {tuple(b.tokens.shape)[1] % 16 for b in padded} == {0}
    assert len({b.where.numel() // b.sentences for b in padded}) == 1  # one target count a row: few shapes
    for plain, pad in zip(batches, padded):
        assert plain.count == pad.count
        grads = []
        for batch in (plain, pad):
            model.zero_grad()
            loss = batch_loss(model, batch)
            loss.backward()
            grads.append((float(loss), [p.grad.clone() for p in model.parameters() if p.requires_grad]))
        assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
        for a, b in zip(grads[0][1], grads[1][1]):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_the_checkpoint_holds_the_prompts_of_the_best_validation_not_the_last(tmp_path):
    """The prompts saved are those that reached the best valid accuracy (a copy taken then, not a view of
    the parameters that go on training): decoding valid with them gives that accuracy."""
    from speechprompt.prompting.decoding import load_prompt
    from speechprompt.prompting.labels import CandidateSteps
    from speechprompt.prompting.loop import correct_sentences

    run = plateau_run(tmp_path, "--max-epoch", 60, "--patience", 2)
    last = train_log(run.stderr)[-1]["valid"]
    model, ckpt = load_prompt(str(tmp_path / "prompt.pt"), torch.device("cpu"))
    assert last < ckpt["best"]  # the run ended below its best: the last prompts are not the best
    vocab = model.base.vocab
    valid = read_split(str(tmp_path / "bin"), "valid", vocab.index).sentences
    candidates = CandidateSteps([tuple(vocab.index(t) for t in label.split()) for label in ckpt["labels"]],
                                vocab.eos, model.base.shape.vocab_size)
    with torch.no_grad():
        right = sum(int(correct_sentences(model, b)) for b in make_batches(valid, vocab, 16, 4096, None, candidates))
    assert right / len(valid) == ckpt["best"] == ckpt["stop"]["best_valid_accuracy"]
