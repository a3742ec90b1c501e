"""The hf backbone: transformers' OPT and LLaMA-family causal LMs under the prompt (tiny random ones, built here).

Skipped, with the reason, where the optional `transformers` is not installed.
"""
import json

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the hf backbone needs the optional `transformers`")

from conftest import sp  # noqa: E402
from hf_fixtures import OFFSET, build_hf_lm, make_hf_lm  # noqa: E402
from prompt_fixtures import TOKEN, assert_same_as_every_row, make_databin, toy_rows, write_verbalizer  # noqa: E402
from speechprompt.checkpoints import load_checkpoint  # noqa: E402
from speechprompt.prompting import backbones  # noqa: E402
from speechprompt.prompting.backbones import hf_lm  # noqa: E402
from speechprompt.prompting.decoding import Decoder  # noqa: E402
from speechprompt.prompting.model import PromptConfig, PromptLM  # noqa: E402

# (family, options): OPT pre-norm; OPT post-norm with the 350M's input/output projections (TWIST-350M's
# layout); LLaMA with grouped-query attention (TWIST-7B's family); its copies Mistral and Qwen2
SHAPES = [("opt", {}), ("opt", dict(pre_norm=False, proj_dim=16)), ("llama", dict(kv_heads=2)),
          ("mistral", dict(kv_heads=2)), ("qwen2", dict(kv_heads=1))]
IDS = ["opt", "opt-postnorm-proj", "llama-gqa", "mistral", "qwen2"]


def hf_backbone(directory, family="opt", **options):
    return backbones.load("hf", make_hf_lm(directory, family, **options))


def randomize_prompts(model, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_()


def trainable_formula(config: dict, prompt_length: int, classes: int = 0) -> int:
    """docs/backbones.md's count: P x D (input prompt) + L x 2 x P x Hkv x hd (deep prompts) + E (separator,
    the token embedding's width) + (V + 1) x C (linear verbalizer)."""
    D, L, V = config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    hd = config.get("head_dim") or D // heads
    E = config.get("word_embed_proj_dim") or D
    return prompt_length * D + L * 2 * prompt_length * kv * hd + E + (V + 1) * classes


@pytest.mark.parametrize("family,options", SHAPES, ids=IDS)
def test_prompts_off_forward_equals_the_transformers_forward(tmp_path, family, options):
    backbone = hf_backbone(tmp_path / "lm", family, **options)
    model = PromptLM(backbone, PromptConfig(5, deep=False, input_prompt=False, separator=False))
    tokens = torch.randint(OFFSET, OFFSET + 20, (3, 11))
    tokens[1, 7:] = backbone.vocab.pad
    with torch.no_grad():
        ours = model.logits(model.features(tokens)[0])
        theirs = backbone.model(input_ids=tokens).logits
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family,options", SHAPES[1:3], ids=IDS[1:3])
def test_kv_cache_continuation_equals_a_full_forward(tmp_path, family, options):
    model = PromptLM(hf_backbone(tmp_path / "lm", family, **options), PromptConfig(3))
    randomize_prompts(model)
    sep = model.sep_index
    with torch.no_grad():
        tokens = torch.randint(OFFSET, OFFSET + 20, (2, 10))
        tokens[:, 4] = sep  # a separator inside the prefix
        full, _ = model.features(tokens)
        _, cache = model.features(tokens[:, :6])
        valid = torch.ones(2, 3 + 6, dtype=torch.bool)
        rest, _ = model.features(tokens[:, 6:], cache, valid, torch.full((2,), 6))
    torch.testing.assert_close(rest, full[:, 6:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family,options", SHAPES[:3], ids=IDS[:3])
def test_the_input_prompt_run_once_for_a_batch_equals_it_run_in_every_row(tmp_path, family, options):
    model = PromptLM(hf_backbone(tmp_path / "lm", family, **options), PromptConfig(3))
    randomize_prompts(model, seed=1)
    tokens = torch.randint(OFFSET, OFFSET + 20, (4, 9))
    tokens[:, 6] = model.sep_index
    assert_same_as_every_row(model.train(), tokens)


@pytest.mark.parametrize("family,options", SHAPES[:3], ids=IDS[:3])
def test_trainable_count_follows_the_formula_and_nothing_else_trains(tmp_path, family, options):
    backbone = hf_backbone(tmp_path / "lm", family, **options)
    config = backbone.model.config.to_dict()
    for prompt_length, classes in ((5, 0), (7, 3)):
        model = PromptLM(backbone, PromptConfig(prompt_length, num_classes=classes))
        assert model.trainable_count() == trainable_formula(config, prompt_length, classes)
    assert not any(p.requires_grad for p in backbone.parameters())


def test_trainable_count_at_twist_350m_shape():
    """TWIST-350M is OPT-350M's shape (24 x 1024, 16 heads, 512-wide embeddings projected in and out), built
    on the meta device: no memory, the same modules."""
    config = transformers.OPTConfig(vocab_size=504, hidden_size=1024, num_hidden_layers=24, ffn_dim=4096,
                                    num_attention_heads=16, word_embed_proj_dim=512, do_layer_norm_before=False,
                                    max_position_embeddings=2048, offset=4)
    with torch.device("meta"):
        model = transformers.OPTForCausalLM(config)
    backbone = hf_lm.OPTWalk(model, hf_lm.vocabulary_of(config.to_dict(), "config.json")).freeze()
    prompt = PromptLM(backbone, PromptConfig(5))
    assert prompt.trainable_count() == trainable_formula(config.to_dict(), 5) == 251_392
    assert hf_lm.parameter_count(config.to_dict()) == sum(p.numel() for p in model.parameters()) == 305_715_200


@pytest.mark.parametrize("family,options", SHAPES + [("opt", dict(tie_word_embeddings=False)),
                                                     ("llama", dict(attention_bias=True, mlp_bias=True))],
                         ids=IDS + ["opt-untied", "llama-biases"])
def test_parameter_count_from_the_config_equals_the_model(family, options):
    model = build_hf_lm(family, **options)
    assert hf_lm.parameter_count(model.config.to_dict()) == sum(p.numel() for p in model.parameters())


def test_units_map_to_tokens_as_twist_maps_them(tmp_path):
    opt = backbones.vocabulary("hf", make_hf_lm(tmp_path / "opt", "opt"))
    # OPT says bos = eos = 2, pad 1: `<s>` is the first other special, fairseq's order (<s> <pad> </s> <unk>)
    assert (opt.bos, opt.pad, opt.eos, opt.unk) == (0, 1, 2, 3)
    assert [opt.index(str(u)) for u in (0, 7, 19)] == [OFFSET, OFFSET + 7, OFFSET + 19]
    assert opt.index("20") == opt.unk and len(opt) == OFFSET + 20
    llama = backbones.vocabulary("hf", make_hf_lm(tmp_path / "llama", "llama"))  # bos 1, eos 2, no pad
    assert (llama.bos, llama.eos, llama.pad, llama.unk) == (1, 2, 2, 0)
    assert llama.string([1, OFFSET + 3, 2]) == "<s> 3 </s>"


def test_a_config_without_a_units_map_or_room_for_the_separator_is_refused_in_one_line(tmp_path):
    lm = make_hf_lm(tmp_path / "lm", "opt")
    config = json.loads((tmp_path / "lm" / "config.json").read_text())
    for change, expected in (({"offset": None}, "no units-to-tokens map"),
                             ({"offset": 2, "eos_token_id": 0, "pad_token_id": 1, "bos_token_id": 0},
                              "leaves no special token for the separator"),
                             ({"model_type": "gpt2"}, "model_type 'gpt2' is not walked")):
        (tmp_path / "lm" / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(Exception) as error:
            backbones.vocabulary("hf", lm)
        assert expected in error.value.format_message() and "\n" not in error.value.format_message()


def brute_force(model, prefix, candidate, eos):
    """Sum of log p(candidate tokens, </s>) from one full forward of `prefix + candidate`."""
    with torch.no_grad():
        x, _ = model.features(torch.tensor([prefix + candidate]))
        logp = model.logits(x).log_softmax(-1)[0]
    return sum(float(logp[len(prefix) - 1 + j, t]) for j, t in enumerate(candidate + [eos]))


@pytest.mark.parametrize("family,options", SHAPES[1:3], ids=IDS[1:3])
def test_decoding_equals_brute_force_scoring_of_every_candidate(tmp_path, family, options):
    backbone = hf_backbone(tmp_path / "lm", family, **options)
    model = PromptLM(backbone, PromptConfig(4))
    randomize_prompts(model, 1)
    vocab = backbone.vocab
    labels = ["1 2", "2 3", "3 1 2", "4", "1 3"]  # shared prefixes, lengths 1-3: a trie and `</s>` scored
    decoder = Decoder(model, vocab, labels)
    assert not decoder.one_pass and decoder.scores_eos
    idx = vocab.index
    prefixes = [[vocab.eos, idx("5"), idx("9"), vocab.bos],
                [vocab.eos, idx("7"), idx("8"), idx("6"), idx("11"), vocab.bos]]
    batch = torch.full((2, 6), vocab.pad)
    for row, p in enumerate(prefixes):
        batch[row, :len(p)] = torch.tensor(p)
    with torch.no_grad():
        scores = decoder.score(batch, torch.tensor([len(p) for p in prefixes]))
    for row, p in enumerate(prefixes):
        for c, label in enumerate(labels):
            expected = brute_force(model, p, [idx(t) for t in label.split()], vocab.eos)
            assert abs(float(scores[row, c]) - expected) < 1e-4, (row, label)


_TOY = {}


def toy_run(tmp_path_factory, family):
    """sp-train --backbone hf on the toy task (the label is which of units 1, 2, 3 the utterance holds), then
    sp-sample on its test split; shared by the tests of a session."""
    if family not in _TOY:
        root = tmp_path_factory.mktemp(f"hf-toy-{family}")
        data = make_databin(str(root / "bin"), {"train": toy_rows(240, 1), "valid": toy_rows(48, 2),
                                                "test": toy_rows(60, 3)})
        lm = make_hf_lm(root / "lm", family, **({"kv_heads": 2} if family == "llama" else {}))
        run = sp("train", data, "--base", lm, "--backbone", "hf", "--linear-verbalizer", "-o", root / "prompt.pt",
                 "--max-epoch", 8, "--batch-size", 16, "--prompt-length", 5, "--lr", 1e-2, "--device", "cpu")
        vb = write_verbalizer(str(root / "vb.json"))
        sp("sample", data, "--prompt", root / "prompt.pt", "--verbalizer", vb, "-o", root / "test.jsonl",
           "--device", "cpu")
        records = [json.loads(line) for line in open(root / "test.jsonl")]
        _TOY[family] = (root, lm, data, run, records)
    return _TOY[family]


@pytest.mark.parametrize("family", ["opt", "llama"])
def test_prompt_tuning_learns_the_toy_task(tmp_path_factory, family):
    root, lm, _data, run, records = toy_run(tmp_path_factory, family)
    ckpt = load_checkpoint(root / "prompt.pt")
    assert ckpt["base"]["kind"] == "hf" and ckpt["base"]["sha256"] == hf_lm.identity(lm)
    assert set(ckpt["prompt"]) == {"input_prompt", "deep_prompt", "separator", "verbalizer.weight", "verbalizer.bias"}
    assert ckpt["best"] >= 0.9, run.stderr[-600:]  # chance is 1/3 (three balanced classes)
    accuracy = sum(r["prediction"] == r["label"] for r in records) / len(records)
    assert accuracy >= 0.85 and {r["prediction"] for r in records} == set(TOKEN)


def test_a_changed_base_is_refused_by_sp_sample(tmp_path_factory, tmp_path):
    root, lm, data, _run, _records = toy_run(tmp_path_factory, "opt")
    other = make_hf_lm(tmp_path / "other", "opt", seed=5)  # same config, other weights
    bad = sp("sample", data, "--prompt", root / "prompt.pt", "--base", other, "-o", tmp_path / "p.jsonl",
             "--device", "cpu", check=False)
    assert bad.returncode == 1 and "sha256 differs" in bad.stderr and "Traceback" not in bad.stderr


def test_a_vocabulary_smaller_than_the_kmeans_is_refused_in_one_line(tmp_path):
    data = make_databin(str(tmp_path / "bin"), {"train": toy_rows(16, 1), "valid": toy_rows(8, 2)})  # 20 units
    lm = make_hf_lm(tmp_path / "lm", "opt", units=12)
    bad = sp("train", data, "--base", lm, "--backbone", "hf", "-o", tmp_path / "p.pt", "--device", "cpu",
             check=False)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 1 and len(lines) == 1 and lines[0].startswith("sp-train: error: ")
    assert "dict.txt" in lines[0] and "20 units" in lines[0] and "tokens for 12" in lines[0]
    assert "fewer unit tokens than the k-means has centroids" in lines[0] and not (tmp_path / "p.pt").exists()


def test_a_llama_too_big_for_the_cpu_is_refused_from_its_config_before_loading(tmp_path):
    data = make_databin(str(tmp_path / "bin"), {"train": toy_rows(16, 1), "valid": toy_rows(8, 2)})
    lm = tmp_path / "llama-70b"
    lm.mkdir()
    config = transformers.LlamaConfig(vocab_size=504, hidden_size=8192, num_hidden_layers=80, intermediate_size=28672,
                                      num_attention_heads=64, num_key_value_heads=8, offset=4)
    config.save_pretrained(lm)  # the config alone: the refusal must come before any weight is read
    bad = sp("train", data, "--base", lm / "config.json", "--backbone", "hf", "-o", tmp_path / "p.pt",
             "--device", "cpu", check=False)
    error = bad.stderr.strip().splitlines()[-1]  # after the lines that log the settings chosen
    assert bad.returncode == 1 and error.startswith("sp-train: error: ") and "Traceback" not in bad.stderr
    assert "68.46 B parameters" in error and "GiB for its fp32 weights" in error and "the CPU has" in error
    assert not (tmp_path / "p.pt").exists()


def test_a_fairseq_checkpoint_given_as_hf_is_one_line(tmp_path):
    from prompt_fixtures import make_lm

    data = make_databin(str(tmp_path / "bin"), {"train": toy_rows(16, 1), "valid": toy_rows(8, 2)})
    lm = make_lm(str(tmp_path / "lm"))
    bad = sp("train", data, "--base", lm, "--backbone", "hf", "-o", tmp_path / "p.pt", "--device", "cpu",
             check=False)
    assert bad.returncode == 1 and "use --backbone fairseq" in bad.stderr and "Traceback" not in bad.stderr
