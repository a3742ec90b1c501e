"""sp-baseline: a linear probe on the units, to see whether prompting beats it.

    sp-baseline train.units test.units -o baseline.jsonl && sp-score baseline.jsonl -o baseline.json

tf-idf of unit 1-3-grams (sublinear tf), then a linear SVM (or logistic
regression), trained on the labelled train table; writes predictions JSONL in
sp-sample's format (`id`, `units`, `label`, `prediction`, `score`, `scores`),
so sp-score scores both the same way. Scores are the classifier's decision
values, softmax-normalised over the classes.
"""
import json

import click
import numpy as np

from .io import BadInput, Skipper, atomic_output, command, log, output_option, read_units, skip_bad_option


@command("tf-idf unit n-gram linear classifier: train on a units table, predict another; predictions JSONL.")
@click.argument("train")
@click.argument("test", default="-")
@output_option
@click.option("--ngrams", default=3, show_default=True, help="Use unit 1..N-grams.")
@click.option("--model", "kind", default="svm", show_default=True, type=click.Choice(["svm", "logreg"]))
@click.option("--C", "c", default=1.0, show_default=True, help="Inverse regularisation strength.")
@click.option("--seed", default=0, show_default=True)
@skip_bad_option
def main(train, test, output, ngrams, kind, c, seed, skip_bad):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    skipper = Skipper(skip_bad)
    train_rows = [r for r in read_units(train, skipper) if r.label is not None]
    test_rows = list(read_units(test, skipper))
    skipper.report("lines")
    if len({r.label for r in train_rows}) < 2:
        raise BadInput("need labelled train rows of at least two classes", train)
    vectorizer = TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False, ngram_range=(1, ngrams),
                                 sublinear_tf=True)
    x_train = vectorizer.fit_transform(" ".join(r.units) for r in train_rows)
    classifier = (LinearSVC(C=c, random_state=seed) if kind == "svm"
                  else LogisticRegression(C=c, max_iter=2000, random_state=seed))
    classifier.fit(x_train, [r.label for r in train_rows])
    decision = classifier.decision_function(vectorizer.transform(" ".join(r.units) for r in test_rows))
    classes = list(classifier.classes_)
    if decision.ndim == 1:  # two classes: one column, positive = classes[1]
        decision = np.stack([-decision, decision], 1)
    probs = np.exp(decision - decision.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    with atomic_output(output) as out:
        for row, p in zip(test_rows, probs):
            best = int(p.argmax())
            out.write(json.dumps({"id": row.id, "units": " ".join(row.units), "label": row.label,
                                  "prediction": classes[best], "score": round(float(p[best]), 6),
                                  "scores": {k: round(float(s), 6) for k, s in zip(classes, p)}}) + "\n")
    log(f"{kind} on {x_train.shape[1]} unit 1-{ngrams}-grams from {len(train_rows)} train rows; "
        f"predicted {len(test_rows)}")
