"""sp-sample: decode the label after `<s>` for every sentence of a data-bin split, batched.

    sp-sample data-bin/ --prompt exp/prompt.pt --verbalizer verbalizer.json -o test.jsonl

Decoding chooses among the candidate labels: the distinct labels of the train
split, which sp-train stores in the prompt checkpoint. So a prediction is always
a label the task has, and every candidate gets a probability (the `scores`,
from which sp-score computes EER).

- Single-token labels (all candidates one token): one forward pass over
  `</s> units <s>`; the logits at `<s>`, restricted to the candidates' tokens
  (or the linear verbalizer's classes), give the scores.
- Multi-token labels (multi-slot tasks, spelled labels): the units run once,
  keeping each layer's keys and values (the KV cache); then the candidates'
  trie runs on that cache in one more pass (each distinct label prefix once),
  and a candidate's score is the sum of its tokens' log probabilities (and end
  of sequence when candidates differ in length). Scoring the known candidates
  instead of greedy decoding costs one extra short pass and cannot produce a
  label the task does not have.

Sentences are batched by length: at most `--batch-size` sentences and
`--max-tokens` tokens (units and label prefixes) a pass, so long utterances do
not exhaust memory. A sentence longer than the uLM's positions is an error
that names `sp-lmdata --max-units`.

Output, one JSON object a line, in the order of `DIR/SPLIT.id`:
`{"id", "units", "label" (truth, null if unlabelled), "prediction", "score", "scores"}`.
"""
import sys

import click
import torch

from .checkpoints import file_hash, json_identity, load_checkpoint
from .io import (BadInput, Prediction, Skipper, atomic_output, command, log, output_option, pick_device,
                 runtime_options, skip_bad_option)
from .precision import autocast


def load_prompt(path: str, device, base: str | None = None):
    """The PromptLM of a prompt checkpoint: its base LM (checked by sha256) and trained tensors."""
    from .prompting.model import PromptConfig
    from .prompting.plugin import build_prompt_lm

    ckpt = load_checkpoint(path)
    if not {"prompt", "config", "labels", "base"} <= set(ckpt):
        what = "a fairseq model checkpoint (a unit LM? give it to sp-train --base)" if "model" in ckpt else \
            f"keys {sorted(map(str, ckpt))[:4]}"
        raise BadInput(f"refused: not a prompt checkpoint from sp-train: {what}", path)
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
    """Candidate scoring over a PromptLM; `score(prefix, lengths)` -> log-probabilities, B x candidates.

    The candidates' token sequences form a trie. A candidate's score is the sum,
    over its tokens, of the log-probability of that token after `<s>` and the
    tokens before it. The first token's distribution is the logits at `<s>`;
    every other one is at a trie node (a proper prefix of some candidate), and
    all nodes run in one more pass on the KV cache of the units, each attending
    to its ancestors only. So 1,251 spelled labels of two tokens over 100 digits
    cost 13 extra tokens per sentence, not 2,502. End of sequence is scored only
    when candidates differ in length; among labels of one length every candidate
    ends there, and scoring it would run one more token per candidate.
    With the linear verbalizer, candidate i is class i (sp-train's order) and
    the logits at `<s>` are the class scores.
    """

    def __init__(self, model, dictionary, labels: list[str]):
        self.model = model
        device = next(model.parameters()).device
        self.linear = model.verbalizer is not None
        rows = [tuple(dictionary.index(t) for t in label.split()) for label in labels]
        self.scores_eos = len({len(r) for r in rows}) > 1 and not self.linear
        if self.scores_eos:
            rows = [r + (dictionary.eos(),) for r in rows]
        if self.linear:
            rows = [(i,) for i in range(len(labels))]  # class indices at <s>
        # trie nodes: the proper prefixes a next token is predicted after; 0 is the root (`<s>`)
        node = {(): 0}
        for r in rows:
            for d in range(1, len(r)):
                node.setdefault(r[:d], len(node))
        nodes = sorted(node, key=node.get)[1:]
        self.one_pass = not nodes
        self.tokens = torch.tensor([n[-1] for n in nodes], dtype=torch.long, device=device)
        self.depth = torch.tensor([len(n) - 1 for n in nodes], dtype=torch.long, device=device)
        self.attend = torch.tensor([[a == b[:len(a)] for a in nodes] for b in nodes], dtype=torch.bool,
                                   device=device).reshape(len(nodes), len(nodes))
        # each candidate's steps: (node the token is predicted at, token), padded with (0, 0) and masked
        width = max(map(len, rows))
        self.step_node = torch.tensor([[node[r[:d]] for d in range(len(r))] + [0] * (width - len(r)) for r in rows],
                                      device=device)
        self.step_token = torch.tensor([list(r) + [0] * (width - len(r)) for r in rows], device=device)
        self.step_mask = torch.tensor([[1.0] * len(r) + [0.0] * (width - len(r)) for r in rows], device=device)

    @property
    def extra_tokens(self) -> int:
        """Tokens each sentence runs after its prefix (the trie nodes)."""
        return len(self.tokens)

    def score(self, prefix: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        m = self.model
        B = prefix.shape[0]
        x, cache = m.features(prefix)
        hidden = x[torch.arange(B), lengths - 1][:, None]  # at <s>
        if not self.one_pass:
            n_in = 0 if m.input_prompt is None else m.input_prompt.shape[0]
            valid = torch.cat([lengths.new_ones(B, n_in, dtype=torch.bool),
                               torch.arange(prefix.shape[1], device=prefix.device) < lengths[:, None]], 1)
            y, _ = m.features(self.tokens.expand(B, -1), cache, valid, lengths, self.depth, self.attend)
            hidden = torch.cat([hidden, y], 1)
        logp = m.logits(hidden).float().log_softmax(-1)  # B x (1 + nodes) x V (or classes)
        return (logp[:, self.step_node, self.step_token] * self.step_mask).sum(-1)


@command("Decode the label after <s> for each sentence of a data-bin split; write predictions JSONL keyed by id.")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--prompt", "prompt_path", required=True, type=click.Path(exists=True, dir_okay=False), help="From sp-train.")
@click.option("--split", default="test", show_default=True)
@click.option("--verbalizer", type=click.Path(exists=True, dir_okay=False), help="Map tokens back to label values.")
@click.option("--base", type=click.Path(exists=True, dir_okay=False), help="The base LM, if it moved [default: as recorded].")
@output_option
@click.option("--batch-size", default=64, show_default=True, help="At most this many sentences per forward pass.")
@click.option("--max-tokens", default=16384, show_default=True, type=click.IntRange(min=1),
              help="At most this many tokens per forward pass (padded units and label tokens, all sentences).")
@runtime_options(precision=True)
@skip_bad_option
def main(data, prompt_path, split, verbalizer, base, output, batch_size, max_tokens, device, threads, precision,
         skip_bad):
    from fairseq.data import data_utils
    from tqdm import tqdm

    from .prompting.plugin import read_split, split_at_separator

    device = pick_device(device, precision, threads)
    model, ckpt = load_prompt(prompt_path, device, base)
    dictionary = _dictionary(ckpt)
    candidates = ckpt["labels"]
    if not candidates:
        raise BadInput("the prompt checkpoint lists no train labels", prompt_path)
    to_label = verbalizer_decoder(verbalizer, ckpt, candidates) if verbalizer else " ".join
    decoder = Decoder(model, dictionary, candidates)
    names = [to_label(c.split()) for c in candidates]
    try:
        sentences, ids = read_split(data, split, dictionary)
    except (OSError, ValueError) as error:
        raise BadInput(str(error), data)
    positions = model.base.max_positions()
    longest_label = max(len(c.split()) for c in candidates)
    skipper, items = Skipper(skip_bad), []
    for i, seq in enumerate(sentences):
        with skipper.guard():
            where = f"{data}/{split}:{i + 1} ({ids[i]})"
            parts = split_at_separator(seq, dictionary)
            if parts is None:
                found = int((seq == dictionary.bos()).sum())
                raise BadInput(f"expected one <s> in 'units <s> label', found {found}", where)
            units, gold = parts
            check_length(len(units), longest_label, positions, where)
            items.append((i, torch.cat([seq.new_tensor([dictionary.eos()]), units, seq.new_tensor([dictionary.bos()])]), gold))
    results = {}
    with torch.inference_mode(), autocast(device, precision), \
            tqdm(total=len(items), desc="decode", unit="utt", file=sys.stderr) as bar:
        for batch in token_batches(items, decoder.extra_tokens, batch_size, max_tokens):
            lengths = torch.tensor([len(p) for _, p, _ in batch], device=device)
            prefix = data_utils.collate_tokens([p for _, p, _ in batch], dictionary.pad()).to(device)
            probs = decoder.score(prefix, lengths).softmax(-1).cpu()
            for row, (i, p, gold) in enumerate(batch):
                label = to_label(dictionary.string(gold).split()) if len(gold) else None
                results[i] = Prediction.best(ids[i], dictionary.string(p[1:-1]), label, names, probs[row].tolist())
            bar.update(len(batch))
    with atomic_output(output) as out:
        for i in sorted(results):
            out.write(results[i].row() + "\n")
    skipper.report("sentences")
    how = "one pass" if decoder.one_pass else f"candidate scoring on a KV cache, {decoder.extra_tokens} trie tokens"
    log(f"decoded {len(results)} sentences ({how}, {len(candidates)} candidates)")


def verbalizer_decoder(path: str, ckpt: dict, candidates: list[str]):
    """tokens -> label by the verbalizer at `path`, which must be the one the prompt was trained with.

    A different map would turn truth and prediction alike into `<unk>` (or into
    other labels) and score them as agreeing, so it is refused: by identity when
    sp-train recorded one (`--verbalizer`), and always when a train label has no
    value under it.
    """
    from .verbalizer import load_verbalizer

    recorded = (ckpt.get("verbalizer") or {}).get("sha256")
    if recorded and json_identity(path) != recorded:
        raise BadInput(f"refused: not the verbalizer the prompt was trained with "
                       f"({ckpt['verbalizer']['path']}; sha256 differs)", path)
    try:
        vb = load_verbalizer(path)
    except (ValueError, KeyError, TypeError) as error:
        raise BadInput(f"not a verbalizer: {error}", path) from None
    unknown = sorted({word for c in candidates for word in vb.words(c.split())} - set(vb.inverse))
    if unknown:
        raise BadInput(f"refused: the prompt's train labels use tokens {unknown[:5]} this verbalizer maps to no "
                       f"label (trained with another verbalizer?)", path)
    return lambda tokens: vb.decode(tokens, default="<unk>")


def check_length(units: int, label: int, positions: int, where: str) -> None:
    """`</s> units <s> label` must fit the uLM's positions: a clear error, not an index error in the model."""
    if units + label + 2 > positions:
        raise BadInput(f"{units} units + {label} label tokens + 2 do not fit the uLM's {positions} positions; "
                       f"crop the units: sp-lmdata --max-units {positions - label - 2} (Make: MAX_UNITS)", where)


def token_batches(items: list, extra: int, batch_size: int, max_tokens: int):
    """Batches of items (i, prefix, gold) of similar length: at most `batch_size` sentences and
    `max_tokens` tokens, counting the padded prefix and the `extra` label tokens of each sentence."""
    batch, longest = [], 0
    for item in sorted(items, key=lambda item: len(item[1])):
        size = max(longest, len(item[1])) + extra
        if batch and (len(batch) == batch_size or (len(batch) + 1) * size > max_tokens):
            yield batch
            batch, longest = [], 0
        batch.append(item)
        longest = max(longest, len(item[1]))
    if batch:
        yield batch


def _dictionary(ckpt):
    from fairseq.data import Dictionary
    from .prompting.plugin import lm_dict_path

    return Dictionary.load(lm_dict_path(ckpt["base"]["path"], ckpt["base"]["dict"]))
