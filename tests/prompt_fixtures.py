"""Tiny unit LMs and data-bins for the prompt-tuning tests, built with fairseq's own classes."""
from __future__ import annotations

import os
import random

import torch
from fairseq import options, tasks
from fairseq.data import Dictionary, indexed_dataset
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from omegaconf import OmegaConf

UNITS = 20  # units 0..19; labels are verbalized onto unit tokens, as the freq verbalizer does


def write_dict(path: str, n: int = UNITS) -> None:
    with open(path, "w") as f:
        f.writelines(f"{i} 1\n" for i in range(n))


def build_lm(directory: str, layers=2, dim=32, heads=4, ffn=64, normalize_before=False, learned_pos=False,
             seed=0, units=UNITS, io_dim=None, positions=128):
    """A randomly initialised fairseq transformer_lm (and its cfg), dict.txt written to `directory`."""
    os.makedirs(directory, exist_ok=True)
    write_dict(os.path.join(directory, "dict.txt"), units)
    argv = [directory, "--task", "language_modeling", "--arch", "transformer_lm", "--decoder-layers", str(layers),
            "--decoder-embed-dim", str(dim), "--decoder-ffn-embed-dim", str(ffn), "--decoder-attention-heads",
            str(heads), "--share-decoder-input-output-embed", "--tokens-per-sample", str(positions), "--cpu"]
    argv += ["--decoder-normalize-before"] if normalize_before else []
    argv += ["--decoder-learned-pos"] if learned_pos else []
    # fairseq's command line defaults the input/output embedding to 512 wide, projected to `dim`
    argv += ["--decoder-input-dim", str(io_dim or dim), "--decoder-output-dim", str(io_dim or dim)]
    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    cfg = convert_namespace_to_omegaconf(args)
    torch.manual_seed(seed)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    with torch.no_grad():  # fairseq zero-inits some biases; random ones make the equivalence test stricter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model, cfg


def make_lm(directory: str, **kwargs) -> str:
    """`build_lm` saved as a fairseq checkpoint `directory/lm.pt` (dict.txt beside it)."""
    model, cfg = build_lm(directory, **kwargs)
    path = os.path.join(directory, "lm.pt")
    torch.save({"cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), "model": model.state_dict(),
                "args": None, "extra_state": {},
                "optimizer_history": [{"criterion_name": "CrossEntropyCriterion", "optimizer_name": "Adam",
                                       "lr_scheduler_state": {}, "num_updates": 0}]}, path)
    return path


def toy_rows(n: int, seed: int = 0, classes=("yes", "no", "up")):
    """(id, units, label) rows where the label is decided by which of units 1, 2, 3 occurs most."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        c = rng.randrange(len(classes))
        units = [rng.randrange(4, UNITS) for _ in range(rng.randint(4, 10))]
        for _ in range(3):
            units.insert(rng.randrange(len(units) + 1), c + 1)
        rows.append((f"utt{i:04d}", units, classes[c]))
    return rows


TOKEN = {"yes": "1", "no": "2", "up": "3"}  # a fixed verbalizer for the toy task


def write_verbalizer(path: str, token=TOKEN) -> str:
    """The toy verbalizer in sp-verbalize's JSON format."""
    import json

    spec = {"format": "speechprompt-verbalizer/1", "method": "identity", "seed": None, "map": token,
            "classes": list(token), "num_slots": 1, "slot_counts": [1], "slots": [list(token)]}
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


def make_databin(directory: str, splits: dict, token=TOKEN) -> str:
    """fairseq data-bin: SPLIT.bin/.idx/.id and dict.txt, sentences `units <s> label-tokens`."""
    os.makedirs(directory, exist_ok=True)
    write_dict(os.path.join(directory, "dict.txt"))
    dictionary = Dictionary.load(os.path.join(directory, "dict.txt"))
    for split, rows in splits.items():
        prefix = os.path.join(directory, split)
        builder = indexed_dataset.make_builder(prefix + ".bin", impl="mmap", vocab_size=len(dictionary))
        for _uid, units, label in rows:  # label None: a bad sentence without `<s>`
            line = " ".join(map(str, units)) if label is None else \
                " ".join([*map(str, units), "<s>", *(token.get(v, v) for v in label.split())])
            builder.add_item(dictionary.encode_line(line, add_if_not_exist=False, append_eos=True).long())
        builder.finalize(prefix + ".idx")
        with open(prefix + ".id", "w") as f:
            f.writelines(f"{uid}\n" for uid, _, _ in rows)
    return directory


_TRAINED = {}
# The toy's training settings, for a test that trains it again and must get the same prompt.
TOY_TRAINING = ("--max-epoch", 3, "--batch-size", 16, "--prompt-length", 5, "--lr", 2e-2)


def trained_toy(tmp_path_factory, seed=3):
    """One sp-train run on the toy task, shared by the tests of a session (it is the slow part)."""
    from types import SimpleNamespace

    from conftest import sp
    from speechprompt.io import file_hash

    if seed not in _TRAINED:
        root = tmp_path_factory.mktemp(f"toy{seed}")
        lm = make_lm(str(root / "lm"), normalize_before=True)
        data = make_databin(str(root / "bin"), {"train": toy_rows(240, 1), "valid": toy_rows(48, 2),
                                                "test": toy_rows(60, 3)})
        before = file_hash(lm)
        run = sp("train", data, "--base", lm, "-o", root / "prompt.pt", *TOY_TRAINING, "--seed", seed,
                 "--device", "cpu")
        _TRAINED[seed] = SimpleNamespace(root=root, lm=lm, data=data, prompt=str(root / "prompt.pt"),
                                         hash_before=before, log=run.stderr + run.stdout, stdout=run.stdout)
    return _TRAINED[seed]


# ------------------------------------------------------ pGSLM (multi-stream)
F0_EDGES = [(i - 15.5) * 60.0 for i in range(31)]  # 32 bins of 60 cents around the speaker mean


def build_ulm(directory: str, layers=2, dim=32, heads=4, ffn=64, units=UNITS, seed=0, discrete=True,
              shifts="1,1", unvoiced_bin=True, max_duration=20, prosody_scale=1.0, positions=128):
    """A randomly initialised fairseq transformer_ulm (pGSLM's MS-TLM, task speech_unit_modeling), its task
    and cfg; its data config written to `directory` (as fairseq's pgslm recipe writes one). `prosody_scale`
    multiplies the prosody embeddings: fairseq scales the unit embedding by sqrt(dim) and not the others, so
    at random initialisation prosody is a small part of the input, where a trained pGSLM makes it count."""
    import json

    os.makedirs(directory, exist_ok=True)
    f0_units = len(F0_EDGES) + 1 + int(unvoiced_bin)
    config = os.path.join(directory, "data_config.json")
    with open(config, "w") as f:
        json.dump({"manifests": {}, "n_units": units, "f0_vq_n_units": f0_units, "code_hop_size": 320,
                   "sampling_rate": 16000, "f0_vq_type": "precomp", "f0_vq_name": "f0"}, f)
    argv = [config, "--task", "speech_unit_modeling", "--arch", "transformer_ulm", "--criterion",
            "speech_unit_lm_criterion", "--decoder-layers", str(layers), "--decoder-embed-dim", str(dim),
            "--decoder-input-dim", str(dim), "--decoder-output-dim", str(dim), "--decoder-ffn-embed-dim", str(ffn),
            "--decoder-attention-heads", str(heads), "--stream-shifts", shifts, "--max-token-duration",
            str(max_duration), "--tokens-per-sample", str(positions), "--max-target-positions", str(positions), "--cpu"]
    argv += ["--discrete-duration", "--discrete-f0"] if discrete else []
    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    cfg = convert_namespace_to_omegaconf(args)
    torch.manual_seed(seed)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for embedding in model.decoder.embed_other_list:
            if embedding is not None:
                embedding.weight.mul_(prosody_scale)
    return model, task, cfg


def make_ulm(directory: str, **kwargs) -> str:
    """`build_ulm` saved as a fairseq checkpoint `directory/ulm.pt`, its F0 bins (f0_bins.json) beside it."""
    import json

    model, _task, cfg = build_ulm(directory, **kwargs)
    path = save_ulm(model, cfg, os.path.join(directory, "ulm.pt"))
    with open(os.path.join(directory, "f0_bins.json"), "w") as f:
        json.dump({"format": "speechprompt-f0-bins/1", "edges_cents": F0_EDGES,
                   "unvoiced": "symbol" if kwargs.get("unvoiced_bin", True) else "mean"}, f)
    return path


def save_ulm(model, cfg, path: str) -> str:
    """A transformer_ulm as a fairseq checkpoint."""
    torch.save({"cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), "model": model.state_dict(),
                "args": None, "extra_state": {},
                "optimizer_history": [{"criterion_name": "SpeechUnitLmCriterion", "optimizer_name": "Adam",
                                       "lr_scheduler_state": {}, "num_updates": 0}]}, path)
    return path


def write_streams(directory: str, split: str, streams) -> None:
    """SPLIT.dur and SPLIT.f0 beside a data-bin split, as sp-binarize writes them (int32 mmap)."""
    import numpy as np

    for k, name in enumerate(("dur", "f0")):
        builder = indexed_dataset.MMapIndexedDatasetBuilder(os.path.join(directory, f"{split}.{name}.bin"),
                                                            dtype=np.int32)
        for values in streams:
            builder.add_item(torch.as_tensor(values)[:, k].to(torch.int32))
        builder.finalize(os.path.join(directory, f"{split}.{name}.idx"))


def prompt_in_every_row(model, tokens):
    """A prompt model's hidden states and cache for `tokens` computed the plain way: the input prompt's rows
    placed before every sentence and run with it, the deep prompts as every layer's prefix. (The model
    itself runs the input prompt's rows once for the whole batch.)"""
    B, T = tokens.shape
    n = model.input_prompt.shape[0]
    P = model.deep_prompt.shape[2]
    positions = torch.arange(n + T).expand(B, -1)
    # the tokens' own position embeddings count from 0; a backbone's positions in its layers (RoPE) from n
    x = torch.cat([model.input_prompt.expand(B, -1, -1), model.embed(tokens)], 1)
    mask = torch.cat([torch.ones(n + T, P, dtype=torch.bool), torch.ones(n + T, n + T, dtype=torch.bool).tril()], -1)
    shape = model.base.shape
    deep = [tuple(kv.unflatten(-1, (shape.kv_heads, shape.head_dim)).transpose(0, 1).expand(B, -1, -1, -1)
                  for kv in layer) for layer in model.deep_prompt]
    hidden, cache = model.base.run(x, positions, mask, deep)
    return hidden[:, n:], cache


def assert_same_as_every_row(model, tokens, atol=1e-5):
    """The model's hidden states, cache and prompt gradients equal prompt_in_every_row's."""
    prompts = [p for p in model.parameters() if p.requires_grad]
    results = []
    for run in (lambda: model.features(tokens), lambda: prompt_in_every_row(model, tokens)):
        hidden, cache = run()
        grads = torch.autograd.grad(hidden.square().mean(), prompts)
        results.append((hidden.detach(), [t.detach() for kv in cache for t in kv], grads))
    (hidden, cache, grads), (hidden_ref, cache_ref, grads_ref) = results
    torch.testing.assert_close(hidden, hidden_ref, atol=atol, rtol=atol)
    assert len(cache) == len(cache_ref)
    for ours, theirs in zip(cache, cache_ref):
        torch.testing.assert_close(ours, theirs, atol=atol, rtol=atol)
    for ours, theirs in zip(grads, grads_ref):
        torch.testing.assert_close(ours, theirs, atol=atol, rtol=atol)
    assert all(g.abs().sum() > 0 for g in grads), "every prompt gets a gradient"
