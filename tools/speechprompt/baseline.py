"""sp-baseline: linear probes, to see whether prompting beats them.

    sp-baseline train.units test.units -o baseline.jsonl && sp-score baseline.jsonl -o baseline.json
    sp-baseline --features logmel-stats train.tsv test.tsv -o logmel.jsonl   # manifests in

`--features units` (default): tf-idf of unit 1-3-grams (sublinear tf) of
units tables. `--features logmel-stats`: the mean and standard deviation over
time of each log-mel bin of the manifests' audio, standardised, the classic
speech baseline that needs no units. `--features ulm-states --ulm CKPT`: the
frozen unit LM's hidden states after every layer (mean over the units, and the
last unit's), standardised: how much of the task the uLM's features carry
without a prompt. Each goes to a linear SVM (or logistic
regression) trained on the labelled train rows; the tool writes predictions
JSONL in sp-sample's format (`id`, `units`, `label`, `prediction`, `score`,
`scores`), so sp-score scores both the same way. Scores are the classifier's
decision values, softmax-normalised over the classes.
"""
import sys

import click
import numpy as np
import torch

from .io import (BadInput, Prediction, Skipper, Units, atomic_output, command, input_name, log, output_option,
                 pick_device, read_manifest, read_units, runtime_options, skip_bad_option)
from .prompting.backbones import KINDS


def logmel_stats(path: str, skipper: Skipper) -> tuple[list[Units], np.ndarray]:
    """Rows (no units) and [N, 2 * bins] per-utterance log-mel means and standard deviations."""
    from .encoders import build
    from .encoders.stream import encode

    encoder = build("logmel", device=torch.device("cpu"))
    rows, stats = [], []
    for utt, feats in encode(read_manifest(path, skipper), encoder, skipper):
        if feats is not None:
            rows.append(Units(utt.id, [], utt.label, None, utt.where))
            stats.append(torch.cat([feats.mean(0), feats.std(0, unbiased=False)]).numpy())
    return nonempty(rows, path), np.stack(stats)


def ulm_states(rows: list[Units], backbone, device: str, batch_size: int = 64) -> np.ndarray:
    """[N, 2 * layers * d] per-row mean and last hidden state after each layer of the frozen uLM.

    Rows run in batches of similar length, right-padded: the LM is causal, so
    padding after a row's last unit changes none of its states.
    """
    from tqdm import tqdm

    vocab = backbone.vocab
    sequences = [torch.tensor([vocab.eos] + [vocab.index(u) for u in row.units]) for row in rows]
    unknown = sum(int((s == vocab.unk).sum()) for s in sequences)
    if unknown:
        log(f"{unknown} units not in the uLM's dictionary read as <unk>")
    order = sorted(range(len(rows)), key=lambda i: len(sequences[i]))
    out = [None] * len(rows)
    with torch.inference_mode(), tqdm(total=len(rows), desc="uLM states", unit="utt", file=sys.stderr) as bar:
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            lengths = torch.tensor([len(sequences[i]) for i in batch], device=device)
            tokens = torch.full((len(batch), int(lengths.max())), vocab.pad, dtype=torch.long)
            for row, i in enumerate(batch):
                tokens[row, :len(sequences[i])] = sequences[i]
            tokens = tokens.to(device)
            positions = torch.arange(tokens.shape[1], device=device).expand(len(batch), -1)
            causal = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool, device=device).tril()
            layers = []
            backbone.run(backbone.layer_input(backbone.embed_tokens(tokens), positions), positions, causal,
                         states=layers)
            states = torch.stack(layers, 1)  # B x layers x T x d
            valid = (torch.arange(tokens.shape[1], device=device) < lengths[:, None]).float()[:, None, :, None]
            mean = (states * valid).sum(2) / lengths[:, None, None]
            last = states[torch.arange(len(batch)), :, lengths - 1]
            for b, i in enumerate(batch):
                out[i] = torch.cat([mean[b], last[b]], -1).flatten().float().cpu().numpy()
            bar.update(len(batch))
    return np.stack(out)


def nonempty(rows, path: str) -> list:
    """The rows as a list; none at all (an empty file, or every row skipped) is an error."""
    rows = list(rows)
    if not rows:
        raise BadInput("no rows (empty, or every row skipped)", input_name(path))
    return rows


def fitting(rows: list[Units], longest: int, skipper: Skipper) -> list[Units]:
    """The rows the uLM has positions for; a longer one is an error (or a counted skip), found before any batch."""
    kept = []
    for row in rows:
        with skipper.guard():
            if len(row.units) > longest:
                raise BadInput(f"{len(row.units)} units, more than the uLM's {longest} positions "
                               "(crop long utterances first)", row.where)
            kept.append(row)
    return kept


@command("Linear probe baseline (tf-idf unit n-grams, log-mel statistics or uLM states): train, predict; "
         "predictions JSONL.")
@click.argument("train")
@click.argument("test", default="-")
@output_option
@click.option("--features", default="units", show_default=True,
              type=click.Choice(["units", "logmel-stats", "ulm-states"]),
              help="units, ulm-states: TRAIN and TEST are units tables; logmel-stats: they are manifests.")
@click.option("--ulm", type=click.Path(exists=True),
              help="The unit LM of --features ulm-states (a checkpoint, or a Hugging Face model directory).")
@click.option("--ulm-dict", type=click.Path(exists=True, dir_okay=False), help="Its dict.txt [default: beside --ulm].")
@click.option("--ulm-kind", default="fairseq", show_default=True, type=click.Choice(sorted(KINDS)),
              help="The kind of backbone --ulm is (see sp-train --backbone).")
@runtime_options()
@click.option("--ngrams", default=3, show_default=True, help="Use unit 1..N-grams.")
@click.option("--model", "kind", default="svm", show_default=True, type=click.Choice(["svm", "logreg"]))
@click.option("--C", "c", default=1.0, show_default=True, help="Inverse regularisation strength.")
@click.option("--seed", default=0, show_default=True)
@skip_bad_option
def main(train, test, output, features, ulm, ulm_dict, ulm_kind, device, threads, ngrams, kind, c, seed, skip_bad):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    device = pick_device(device, threads=threads)
    skipper = Skipper(skip_bad)
    if features == "units":
        train_rows, test_rows = nonempty(read_units(train, skipper), train), nonempty(read_units(test, skipper), test)
        featurizer = TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False,
                                     ngram_range=(1, ngrams), sublinear_tf=True)
        x_train = featurizer.fit_transform(" ".join(r.units) for r in train_rows)
        x_test = featurizer.transform(" ".join(r.units) for r in test_rows)
        what = f"unit 1-{ngrams}-grams"
    elif features == "ulm-states":
        if not ulm:
            raise click.UsageError("--features ulm-states needs --ulm")
        from .prompting import backbones

        train_rows, test_rows = nonempty(read_units(train, skipper), train), nonempty(read_units(test, skipper), test)
        backbone = backbones.load(ulm_kind, ulm, ulm_dict, device)
        longest = backbone.shape.max_positions - 1  # `</s>` first
        train_rows, test_rows = (nonempty(fitting(rows, longest, skipper), path)
                                 for rows, path in ((train_rows, train), (test_rows, test)))
        x_train, x_test = (ulm_states(rows, backbone, device) for rows in (train_rows, test_rows))
        what = f"uLM hidden states of {ulm}"
    else:
        (train_rows, x_train), (test_rows, x_test) = logmel_stats(train, skipper), logmel_stats(test, skipper)
        what = "log-mel means and deviations"
    if features != "units":  # dense features: standardised on train
        scaler = StandardScaler().fit(x_train)
        x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    skipper.report("lines")
    labelled = [i for i, r in enumerate(train_rows) if r.label is not None]
    if len({train_rows[i].label for i in labelled}) < 2:
        raise BadInput("need labelled train rows of at least two classes", train)
    classifier = (LinearSVC(C=c, random_state=seed) if kind == "svm"
                  else LogisticRegression(C=c, max_iter=2000, random_state=seed))
    classifier.fit(x_train[labelled], [train_rows[i].label for i in labelled])
    decision = classifier.decision_function(x_test)
    classes = list(classifier.classes_)
    if decision.ndim == 1:  # two classes: one column, positive = classes[1]
        decision = np.stack([-decision, decision], 1)
    probs = np.exp(decision - decision.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    with atomic_output(output) as out:
        for row, p in zip(test_rows, probs):
            out.write(Prediction.best(row.id, " ".join(row.units), row.label, classes, p.tolist()).row() + "\n")
    log(f"{kind} on {x_train.shape[1]} features ({what}) from {len(labelled)} train rows; "
        f"predicted {len(test_rows)}")
