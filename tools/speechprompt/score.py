"""sp-score: score predictions JSONL (sp-sample, sp-baseline) and write metrics.json.

    sp-score test.jsonl -o metrics.json --confusion confusion.png [--reference test.units]

Metrics: `accuracy` (exact match of the whole label), `macro_f1` over labels,
for multi-slot labels `slot_accuracy` (one per slot), `f1` of the `positive`
label (`--positive`; two-class tasks default to the second label in sorted
order), for two-class tasks `eer` from the predictions' per-label `scores`,
and the confusion matrix. `better` says for each metric whether higher or lower
is better; `headline` is the metric `--metric` names, with its value and
direction (what Make's summary prints). The truth is each record's `label`, or
with `--reference` the label of a units table joined by id: a reference id
without a prediction (or with a null one) counts as wrong (`missing`). A
prediction is never correct when either side is unknown (`<unk>` in a slot, as
a verbalizer writes for a token of no class).
"""
import contextlib
import json

import click
import numpy as np

from .io import (BadInput, Skipper, atomic_output, atomic_path, command, input_argument, log, output_option,
                 output_path_option, read_predictions, read_units, skip_bad_option)


def eer(truth: list[bool], scores: list[float]) -> float:
    """Equal error rate: where false acceptances and false rejections are equally frequent."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.array(truth, dtype=int), np.array(scores, dtype=float))
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


BETTER = {"accuracy": "higher", "macro_f1": "higher", "slot_accuracy": "higher", "f1": "higher", "eer": "lower"}
HEADLINES = ("accuracy", "macro_f1", "f1", "eer")  # the single-number metrics a task can name
NEEDS = {"f1": "a positive label (--positive, or two classes)",
         "eer": "two classes, a positive label and per-label scores for every record"}


MISSING = "<missing>"
UNKNOWN = ("<unk>", MISSING)


def agree(truth: str | None, prediction: str | None) -> bool:
    """Correct: equal, and neither side is unknown (`<unk>` in any slot, missing); two unknowns never agree."""
    if truth is None or prediction is None:
        return False
    return truth == prediction and not any(u in truth.split() for u in UNKNOWN)


def metrics(pairs: list[tuple], scores: list | None = None, positive: str | None = None) -> dict:
    """`pairs`: (truth, prediction or None); `scores`: per record {label: score}, for EER;
    `positive`: the label whose F1 (and, with two classes, EER) is reported."""
    from sklearn.metrics import f1_score

    truth = [t for t, _ in pairs]
    pred = [p if p is not None else MISSING for _, p in pairs]
    labels = sorted(set(truth))
    right = [agree(t, p) for t, p in zip(truth, pred)]
    # f1_score counts a class's hits by equality, so an unknown prediction is renamed to stay wrong
    f1_pred = [p if ok or p != t else f"{p} (unknown)" for t, p, ok in zip(truth, pred, right)]
    result = {"n": len(pairs), "accuracy": float(np.mean(right)) if pairs else 0.0,
              "macro_f1": float(f1_score(truth, f1_pred, labels=labels, average="macro", zero_division=0)) if pairs else 0.0}
    slots = max((len(t.split()) for t in truth), default=1)
    if slots > 1:
        result["slot_accuracy"] = [float(np.mean([agree((t.split() + [None] * slots)[s], (p.split() + [None] * slots)[s])
                                                  for t, p in zip(truth, pred)])) for s in range(slots)]
    if positive is not None and pairs:
        result["positive"] = positive
        result["f1"] = float(f1_score([t == positive for t in truth], [p == positive for p in pred], zero_division=0))
    if len(labels) == 2 and positive in labels and scores and all(s and positive in s for s in scores):
        result["eer"] = eer([t == positive for t in truth], [s[positive] for s in scores])
    result["better"] = {k: v for k, v in BETTER.items() if k in result}
    index = {label: i for i, label in enumerate(labels)}
    columns = labels + sorted(set(pred) - set(labels))
    matrix = np.zeros((len(labels), len(columns)), dtype=int)
    for t, p in zip(truth, pred):
        matrix[index[t], columns.index(p)] += 1
    result["confusion"] = {"truth": labels, "prediction": columns, "counts": matrix.tolist()}
    return result


LABELLED_CLASSES = 60  # above this many classes, names and counts no longer fit in a readable picture


def plot_confusion(confusion: dict, path: str) -> None:
    """The confusion matrix as a PNG at `path` (a plain path: the caller makes it atomic)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.array(confusion["counts"])
    labelled = max(counts.shape) <= LABELLED_CLASSES
    size = 2 + 0.45 * max(counts.shape) if labelled else 12  # SID's 1,251 labels: a heat map, no names
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    ax.imshow(counts, cmap="Blues", interpolation="nearest")
    if labelled:
        ax.set_xticks(range(counts.shape[1]), confusion["prediction"], rotation=90)
        ax.set_yticks(range(counts.shape[0]), confusion["truth"])
        for (i, j), n in np.ndenumerate(counts):
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                        color="white" if n > counts.max() / 2 else "black")
    ax.set_xlabel("prediction")
    ax.set_ylabel("truth")
    fig.tight_layout()
    try:
        fig.savefig(path, format="png", dpi=120)
    finally:
        plt.close(fig)


@command("Score predictions JSONL: accuracy (exact match), per-slot accuracy, macro-F1, EER; write metrics JSON.")
@input_argument
@output_option
@output_path_option("--confusion", help="Also draw the confusion matrix to this PNG.")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False),
              help="Units table (TSV or GSLM) with the true labels, joined by id.")
@click.option("--positive", help="The positive label: its F1 (`f1`), and EER in a two-class task "
                                 "[default: with two classes, the second label in sorted order].")
@click.option("--metric", "headline", type=click.Choice(HEADLINES), default="accuracy", show_default=True,
              help="The headline metric, recorded as `headline` (an error if it cannot be computed here).")
@skip_bad_option
def main(input, output, confusion, reference, positive, headline, skip_bad):
    skipper = Skipper(skip_bad)
    records = {p.id: p for p in read_predictions(input, skipper)}
    if reference:
        truth = {r.id: r.label for r in read_units(reference, skipper) if r.label is not None}
    else:
        truth = {uid: p.label for uid, p in records.items() if p.label is not None}
    skipper.report("records")
    if not truth:
        raise BadInput("no labelled records to score", reference or input)
    ids = list(truth)
    pairs = [(truth[uid], records[uid].prediction if uid in records else None) for uid in ids]
    labels = sorted(set(truth.values()))
    if positive is not None and positive not in labels:
        raise BadInput(f"--positive {positive!r} is not a true label here (labels: {' '.join(labels[:10])})",
                       reference or input)
    positive = positive or (labels[1] if len(labels) == 2 else None)
    result = metrics(pairs, [records[uid].scores if uid in records else None for uid in ids], positive)
    if headline not in result:
        raise BadInput(f"--metric {headline} needs {NEEDS[headline]}", reference or input)
    result["headline"] = {"metric": headline, "value": result[headline], "better": BETTER[headline]}
    result["missing"] = sum(uid not in records or records[uid].prediction is None for uid in ids)
    result["unscored"] = sum(uid not in truth for uid in records)
    # both outputs or neither: the picture is drawn before either is renamed into place
    with atomic_output(output) as out, (atomic_path(confusion) if confusion else contextlib.nullcontext()) as png:
        json.dump(result, out, indent=1)
        out.write("\n")
        out.flush()  # a full disk fails here, before the picture is renamed into place
        if png:
            plot_confusion(result["confusion"], png)
    extra = "".join(f", {k} of {result['positive']!r} {result[k]:.4f}" for k in ("f1", "eer") if k in result)
    slots = f", slots {' '.join(f'{a:.4f}' for a in result['slot_accuracy'])}" if "slot_accuracy" in result else ""
    log(f"{result['n']} scored: accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}{extra}{slots}"
        f"; {result['missing']} missing, {result['unscored']} without truth")
