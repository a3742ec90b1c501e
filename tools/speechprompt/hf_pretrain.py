"""`sp-pretrain --arch opt`: a transformers OPT trained from scratch on a data-bin's unlabelled units, so that
the hf backbone (TWIST's kind of LM) is exercised and measured without any download.

The model is OPT-shaped (pre-norm, learned positions, tied embeddings) at one of sp-pretrain's sizes, its
vocabulary laid out as TWIST's: four special tokens (`<s> <pad> </s> <unk>`, fairseq's order) and unit u at
token 4 + u (`offset: 4` in config.json). It trains as sp-pretrain's fairseq path does (the same data, the
same settings): each sentence `</s> units` predicts `units </s>`; batches of at most `max_tokens` padded
tokens, sorted by length and shuffled by seed and epoch; Adam (0.9, 0.98), weight decay 0.01, inverse
square-root schedule after a linear warm-up, gradients clipped to 1.0, dropout; the valid loss every
epoch, the best weights kept, stopped after `patience` epochs without a better one. The loop is this
module's own (one function, nanoGPT's shape), over the model's own forward: nothing of transformers' Trainer.

SAVE_DIR gets the best weights (`model.safetensors`), `dict.txt`, `pretrain.json`, and `config.json` last
(the file Make waits for).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from .io import BadInput, log

OFFSET = 4
SPECIALS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}


def token_map(symbols: list[str], where: str) -> tuple[np.ndarray, int]:
    """data-bin index -> OPT token (unit u at 4 + u), and how many units the vocabulary holds."""
    units = [s for s in symbols if s not in SPECIALS and not s.startswith("madeupword")]
    bad = [s for s in units if not s.isdigit()]
    if bad:
        raise BadInput(f"--arch opt maps unit u to token 4 + u, so units must be whole numbers; found {bad[:3]}",
                       where)
    count = max(map(int, units), default=-1) + 1
    table = np.array([SPECIALS.get(s, OFFSET + int(s) if s.isdigit() else SPECIALS["<unk>"]) for s in symbols])
    return table, count


def batches(sentences: list[np.ndarray], max_tokens: int) -> list[list[int]]:
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    groups, group = [], []
    for i in order:  # ascending: the newest sentence is the longest of its group
        if group and (len(group) + 1) * (len(sentences[i]) + 1) > max_tokens:
            groups.append(group)
            group = []
        group.append(i)
    return groups + [group] if group else groups


def collate(sentences, group, device):
    """`</s> units` -> `units </s>` (the sentences end in `</s>`), right-padded; pads are not targets."""
    T = max(len(sentences[i]) for i in group)
    tokens = torch.full((len(group), T + 1), SPECIALS["<pad>"], dtype=torch.long)
    targets = torch.full((len(group), T), -100, dtype=torch.long)
    for row, i in enumerate(group):
        seq = torch.from_numpy(sentences[i])
        tokens[row, 0], tokens[row, 1:len(seq) + 1] = SPECIALS["</s>"], seq
        targets[row, :len(seq)] = seq
    mask = tokens[:, :-1] != SPECIALS["<pad>"]
    mask[:, 0] = True
    return tokens[:, :-1].to(device), mask.to(device), targets.to(device)


def summed_loss(model, sentences, group, device):
    tokens, mask, targets = collate(sentences, group, device)
    logits = model(input_ids=tokens, attention_mask=mask.long()).logits
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum"), \
        int((targets != -100).sum())


def train_opt(data: str, save_dir: str, shape: tuple, lr: float, warmup: int, max_tokens: int, max_epoch: int,
              max_update: int, patience: int, seed: int, device: torch.device, dropout: float, read_split,
              extra: dict | None = None) -> dict:
    from tqdm import tqdm

    from .databin import load_dictionary
    from .prompting.backbones.hf_lm import PROMPT_RESERVE, quiet_transformers

    transformers = quiet_transformers(data)
    dictionary = load_dictionary(os.path.join(data, "dict.txt"))
    table, units = token_map(list(dictionary.symbols), os.path.join(data, "dict.txt"))
    train, valid = ([table[s] for s in read_split(data, split)] for split in ("train", "valid"))
    layers, dim, ffn, heads = shape
    torch.manual_seed(seed)
    config = transformers.OPTConfig(vocab_size=OFFSET + units, hidden_size=dim, num_hidden_layers=layers, ffn_dim=ffn,
                                    num_attention_heads=heads, word_embed_proj_dim=dim, do_layer_norm_before=True,
                                    max_position_embeddings=1024 + PROMPT_RESERVE, dropout=dropout,
                                    attention_dropout=0.0, pad_token_id=1, bos_token_id=2, eos_token_id=2,
                                    offset=OFFSET)
    model = transformers.OPTForCausalLM(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(  # fairseq's inverse_sqrt: linear warm-up, then lr x sqrt(w / step)
        optimizer, lambda step: (step + 1) / warmup if step < warmup else math.sqrt(warmup / (step + 1)))
    train_groups, valid_groups = batches(train, max_tokens), batches(valid, max_tokens)
    best, best_loss, stale, updates, started = None, math.inf, 0, 0, time.time()
    for epoch in range(1, max_epoch + 1):
        model.train()
        order = torch.randperm(len(train_groups), generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        for k in tqdm(order, desc=f"epoch {epoch}", unit="batch", file=sys.stderr, leave=False, disable=None):
            loss, count = summed_loss(model, train, train_groups[k], device)
            optimizer.zero_grad(set_to_none=True)
            (loss / max(count, 1)).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            updates += 1
            if max_update and updates >= max_update:
                break
        model.eval()
        with torch.no_grad():
            totals = [summed_loss(model, valid, g, device) for g in valid_groups]
        valid_loss = sum(float(t) for t, _ in totals) / max(sum(c for _, c in totals), 1)
        log(f"epoch {epoch} update {updates}: valid loss {valid_loss / math.log(2):.4f} bits, "
            f"perplexity {math.exp(valid_loss):.2f}")
        if valid_loss < best_loss:
            best_loss, stale = valid_loss, 0
            best = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if (patience > 0 and stale >= patience) or (max_update and updates >= max_update):
            break
    model.load_state_dict(best)
    os.makedirs(save_dir, exist_ok=True)
    work = tempfile.mkdtemp(dir=save_dir, prefix=".train.")
    try:
        model.cpu().save_pretrained(work)
        shutil.copyfile(os.path.join(data, "dict.txt"), os.path.join(work, "dict.txt"))
        summary = {"arch": "opt", "layers": layers, "embed_dim": dim, "ffn_dim": ffn, "heads": heads, "units": units,
                   "parameters": sum(p.numel() for p in model.parameters()), "data": os.path.abspath(data),
                   "seed": seed, "lr": lr, "max_tokens": max_tokens, "device": str(device), "updates": updates,
                   "train_seconds": round(time.time() - started, 1),
                   "valid_tokens": int(sum(len(s) for s in valid)), "valid_ppl": math.exp(best_loss), **(extra or {})}
        with open(os.path.join(work, "pretrain.json"), "w", encoding="utf-8") as out:
            json.dump(summary, out, indent=1)
            out.write("\n")
        names = [n for n in os.listdir(work) if n != "config.json"] + ["config.json"]  # config.json last: Make's target
        for name in names:
            os.replace(os.path.join(work, name), os.path.join(save_dir, name))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return summary
