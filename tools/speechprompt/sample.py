"""sp-sample: decode the label after `<s>` for every sentence of a data-bin split, batched.

    sp-sample data-bin/ --prompt exp/prompt.pt --verbalizer verbalizer.json -o test.jsonl

Decoding chooses among the candidate labels, the distinct labels of the train split that sp-train
stores in the prompt checkpoint (`prompting/decoding.py` says how): so a prediction is always a label
the task has, and every candidate gets a probability (the `scores`, from which sp-score computes EER).

Sentences are batched by length: at most `--batch-size` sentences and `--max-tokens` tokens (units
and label prefixes) a pass, so long utterances do not exhaust memory. A sentence longer than the
uLM's positions is an error that names `sp-lmdata --max-units`.

A moved experiment decodes with `--base` (and `--base-dict`): the paths recorded in the prompt
checkpoint are hints, the ones given win.

Output, one JSON object a line, in the order of `DIR/SPLIT.id`:
`{"id", "units", "label" (truth, null if unlabelled), "prediction", "score", "scores"}`.
"""
import sys

import click

from .io import (BadInput, Prediction, Skipper, atomic_output, command, log, output_option, pick_device,
                 runtime_options, skip_bad_option)


@command("Decode the label after <s> for each sentence of a data-bin split; write predictions JSONL keyed by id.")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--prompt", "prompt_path", required=True, type=click.Path(exists=True, dir_okay=False), help="From sp-train.")
@click.option("--split", default="test", show_default=True)
@click.option("--verbalizer", type=click.Path(exists=True, dir_okay=False), help="Map tokens back to label values.")
@click.option("--base", type=click.Path(exists=True), help="The base LM (a checkpoint, or a Hugging Face model directory), "
              "if it moved [default: as recorded].")
@click.option("--base-dict", type=click.Path(exists=True, dir_okay=False),
              help="Its dict.txt, if it moved [default: as recorded, else beside --base].")
@output_option
@click.option("--batch-size", default=64, show_default=True, help="At most this many sentences per forward pass.")
@click.option("--max-tokens", default=16384, show_default=True, type=click.IntRange(min=1),
              help="At most this many tokens per forward pass (padded units and label tokens, all sentences).")
@runtime_options(precision=True)
@skip_bad_option
def main(data, prompt_path, split, verbalizer, base, base_dict, output, batch_size, max_tokens, device, threads,
         precision, skip_bad):
    from tqdm import tqdm

    from .databin import read_split
    from .prompting.data import check_units_known
    from .prompting.decoding import (Decoder, check_length, load_prompt, score_batches, sentence_prefix,
                                     verbalizer_decoder)
    from .prompting.labels import label_tokens

    device = pick_device(device, precision, threads)
    model, ckpt = load_prompt(prompt_path, device, base, base_dict)
    vocab = model.base.vocab
    check_units_known(data, vocab, base or ckpt["base"]["path"])
    candidates = ckpt["labels"]
    if not candidates:
        raise BadInput("the prompt checkpoint lists no train labels", prompt_path)
    to_label = verbalizer_decoder(verbalizer, ckpt, candidates) if verbalizer else " ".join
    decoder = Decoder(model, vocab, candidates)
    names = [to_label(c.split()) for c in candidates]
    split_data = read_split(data, split, vocab.index)
    positions = model.base.shape.max_positions
    longest_label = max(len(c.split()) for c in candidates)
    skipper, items = Skipper(skip_bad), []
    for i, seq in enumerate(split_data.sentences):
        with skipper.guard():
            where = split_data.where(data, split, i)
            parts = label_tokens(seq, vocab.bos, vocab.eos)
            if parts is None:
                found = int((seq == vocab.bos).sum())
                raise BadInput(f"expected one <s> in 'units <s> label', found {found}", where)
            units, gold = parts
            check_length(len(units), longest_label, positions, where)
            items.append((i, sentence_prefix(units, vocab), gold))
    results, ids = {}, split_data.ids
    with tqdm(total=len(items), desc="decode", unit="utt", file=sys.stderr) as bar:
        for batch, probs in score_batches(decoder, items, batch_size, max_tokens, device, precision):
            for row, (i, p, gold) in enumerate(batch):
                label = to_label(vocab.string(gold).split()) if len(gold) else None
                results[i] = Prediction.best(ids[i], vocab.string(p[1:-1]), label, names, probs[row].tolist())
            bar.update(len(batch))
    with atomic_output(output) as out:
        for i in sorted(results):
            out.write(results[i].row() + "\n")
    skipper.report("sentences")
    how = "one pass" if decoder.one_pass else f"candidate scoring on a KV cache, {decoder.extra_tokens} trie tokens"
    log(f"decoded {len(results)} sentences ({how}, {len(candidates)} candidates)")

