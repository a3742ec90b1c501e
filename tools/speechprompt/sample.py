"""sp-sample: decode the label after `<s>` for every sentence of a data-bin split, batched.

    sp-sample data-bin/ --prompt exp/prompt.pt --verbalizer verbalizer.json -o test.jsonl

Decoding chooses among the candidate labels: the distinct labels of the train
split, which sp-train stores in the prompt checkpoint. So a prediction is always
a label the task has, and every candidate gets a probability (the `scores`,
from which sp-score computes EER).

- Single-token labels (all candidates one token): one forward pass over
  `</s> units <s>`; the logits at `<s>`, restricted to the candidates' tokens
  (or the linear verbalizer's classes), give the scores.
- Multi-token labels (multi-slot tasks): the units run once, keeping each
  layer's keys and values (the KV cache); then all candidates run together
  on that cache, and a candidate's score is the sum of its tokens' log
  probabilities (and end of sequence). Scoring the known candidates instead
  of greedy decoding costs one extra short pass and cannot produce a label
  the task does not have.

Output, one JSON object a line, in the order of `DIR/SPLIT.id`:
`{"id", "units", "label" (truth, null if unlabelled), "prediction", "score", "scores"}`.
"""
import click
import torch

from .checkpoints import file_hash, load_checkpoint
from .io import (BadInput, Prediction, Skipper, atomic_output, command, log, output_option, pick_device,
                 runtime_options, skip_bad_option)
from .precision import autocast


def load_prompt(path: str, device, base: str | None = None):
    """The PromptLM of a prompt checkpoint: its base LM (checked by sha256) and trained tensors."""
    from .prompting.model import PromptConfig
    from .prompting.plugin import build_prompt_lm

    ckpt = load_checkpoint(path)
    base = base or ckpt["base"]["path"]
    if file_hash(base) != ckpt["base"]["sha256"]:
        raise BadInput(f"base LM {base} is not the one this prompt was trained on (sha256 differs)", path)
    model = build_prompt_lm(base, ckpt["base"]["dict"], PromptConfig.from_dict(ckpt["config"]), device)
    missing = set(ckpt["prompt"]) - set(model.state_dict())
    if missing:
        raise BadInput(f"checkpoint tensors the model does not have: {sorted(missing)[:3]}", path)
    model.load_state_dict(ckpt["prompt"], strict=False)
    return model.eval(), ckpt


class Decoder:
    """Candidate scoring over a PromptLM; `score(prefixes)` -> log-probabilities, B x candidates."""

    def __init__(self, model, dictionary, labels: list[str]):
        self.model, self.dict = model, dictionary
        device = model.token_class.device
        rows = [label.split() for label in labels]
        self.linear = model.verbalizer is not None
        self.one_pass = all(len(r) == 1 for r in rows)
        # inputs: the candidate's tokens; targets: its tokens (+ </s>), or its classes for the linear verbalizer
        inputs = [[dictionary.index(t) for t in r] for r in rows]
        targets = [[int(t) for t in r] if self.linear else ids + [dictionary.eos()] for r, ids in zip(rows, inputs)]
        width = max(map(len, targets))
        self.targets = torch.tensor([t + [-1] * (width - len(t)) for t in targets], device=device)
        self.inputs = torch.tensor([i + [dictionary.pad()] * (width - len(i)) for i in inputs], device=device)

    def score(self, prefix: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        m = self.model
        B, C = prefix.shape[0], self.targets.shape[0]
        x, cache = m.features(prefix)
        first = m.logits(x[torch.arange(B), lengths - 1]).float().log_softmax(-1)  # at <s>
        scores = first[:, self.targets[:, 0]]
        if self.one_pass:
            return scores
        n_in = 0 if m.input_prompt is None else m.input_prompt.shape[0]
        valid = torch.cat([lengths.new_ones(B, n_in, dtype=torch.bool),
                           torch.arange(prefix.shape[1], device=prefix.device) < lengths[:, None]], 1)
        past = [(k.repeat_interleave(C, 0), v.repeat_interleave(C, 0)) for k, v in cache]
        steps = self.inputs[:, :self.targets.shape[1] - 1].repeat(B, 1)
        y, _ = m.features(steps, past, valid.repeat_interleave(C, 0), lengths.repeat_interleave(C))
        logp = m.logits(y).float().log_softmax(-1)  # (B*C) x (W-1) x V
        nxt = self.targets[:, 1:].repeat(B, 1)
        more = logp.gather(-1, nxt.clamp(min=0).unsqueeze(-1)).squeeze(-1).masked_fill(nxt < 0, 0)
        return scores + more.sum(-1).view(B, C)


@command("Decode the label after <s> for each sentence of a data-bin split; write predictions JSONL keyed by id.")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--prompt", "prompt_path", required=True, type=click.Path(exists=True, dir_okay=False), help="From sp-train.")
@click.option("--split", default="test", show_default=True)
@click.option("--verbalizer", type=click.Path(exists=True, dir_okay=False), help="Map tokens back to label values.")
@click.option("--base", type=click.Path(exists=True, dir_okay=False), help="The base LM, if it moved [default: as recorded].")
@output_option
@click.option("--batch-size", default=64, show_default=True, help="Sentences per forward pass.")
@runtime_options(precision=True)
@skip_bad_option
def main(data, prompt_path, split, verbalizer, base, output, batch_size, device, threads, precision, skip_bad):
    from fairseq.data import data_utils

    from .prompting.plugin import read_split, split_at_separator

    device = pick_device(device, precision, threads)
    model, ckpt = load_prompt(prompt_path, device, base)
    dictionary = _dictionary(ckpt)
    vb = None
    if verbalizer:
        from .verbalizer import load_verbalizer
        vb = load_verbalizer(verbalizer)
    to_label = (lambda tokens: vb.decode(tokens, default="<unk>")) if vb else " ".join
    candidates = ckpt["labels"]
    if not candidates:
        raise BadInput("the prompt checkpoint lists no train labels", prompt_path)
    decoder = Decoder(model, dictionary, candidates)
    names = [to_label(c.split()) for c in candidates]
    try:
        sentences, ids = read_split(data, split, dictionary)
    except (OSError, ValueError) as error:
        raise BadInput(str(error), data)
    skipper, items = Skipper(skip_bad), []
    for i, seq in enumerate(sentences):
        with skipper.guard():
            parts = split_at_separator(seq, dictionary)
            if parts is None:
                found = int((seq == dictionary.bos()).sum())
                raise BadInput(f"expected one <s> in 'units <s> label', found {found}", f"{data}/{split}:{i + 1} ({ids[i]})")
            units, gold = parts
            items.append((i, torch.cat([seq.new_tensor([dictionary.eos()]), units, seq.new_tensor([dictionary.bos()])]), gold))
    per_batch = batch_size if decoder.one_pass else max(1, batch_size // len(candidates))
    order = sorted(range(len(items)), key=lambda j: len(items[j][1]))
    results = {}
    with torch.inference_mode(), autocast(device, precision):
        for start in range(0, len(order), per_batch):
            batch = [items[j] for j in order[start:start + per_batch]]
            lengths = torch.tensor([len(p) for _, p, _ in batch], device=device)
            prefix = data_utils.collate_tokens([p for _, p, _ in batch], dictionary.pad()).to(device)
            probs = decoder.score(prefix, lengths).softmax(-1).cpu()
            for row, (i, p, gold) in enumerate(batch):
                label = to_label(dictionary.string(gold).split()) if len(gold) else None
                results[i] = Prediction.best(ids[i], dictionary.string(p[1:-1]), label, names, probs[row].tolist())
    with atomic_output(output) as out:
        for i in sorted(results):
            out.write(results[i].row() + "\n")
    skipper.report("sentences")
    log(f"decoded {len(results)} sentences ({'one pass' if decoder.one_pass else 'candidate scoring with a KV cache'}, "
        f"{len(candidates)} candidates)")


def _dictionary(ckpt):
    from fairseq.data import Dictionary
    from .prompting.plugin import lm_dict_path

    return Dictionary.load(lm_dict_path(ckpt["base"]["path"], ckpt["base"]["dict"]))
