"""sp-classify: labels for new audio from an exported model bundle (`make TASK=X export`).

    sp-classify exp/SCR/bundle.tar clip.wav other.flac           # audio files
    sp-classify exp/SCR/bundle recordings/                       # a folder: its audio files, sorted
    sp-classify exp/SCR/bundle exp/SCR/manifest/test.tsv         # a manifest (sp-manifest's rows)
    find /data -name '*.wav' | sp-classify exp/SCR/bundle.tar    # paths, or manifest rows, on stdin

Each input goes through what the chain did to the test split (classifier.py says how), so a test file
gets the label `predictions.jsonl` gives its id. Output, one JSON object a line, in input order:
`{"id", "path", "label", "score", "top_k": [{"label", "score"}, ...]}` (docs/classify.md).
Ids: a manifest's own; below a folder, the path without its suffix (as sp-manifest makes them);
a file or a path on stdin, the path as given without its suffix.
"""
import time

import click

from .io import Skipper, atomic_output, command, output_option, pick_device, runtime_options, skip_bad_option


@command("Label audio files, folders, manifests or paths on stdin with an exported model bundle; JSONL out.")
@click.argument("bundle", type=click.Path())
@click.argument("audio", nargs=-1)
@output_option
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(min=1),
              help="Alternatives listed per input, the best first.")
@click.option("--batch-seconds", default=60.0, show_default=True, help="Audio per encoder batch, counting padding.")
@click.option("--batch-size", default=64, show_default=True, help="At most this many sentences per uLM pass.")
@click.option("--max-tokens", default=16384, show_default=True, type=click.IntRange(min=1),
              help="At most this many tokens per uLM pass.")
@runtime_options(precision=True)
@skip_bad_option
def main(bundle, audio, output, top_k, batch_seconds, batch_size, max_tokens, device, threads, precision, skip_bad):
    from .classifier import Classifier, inputs_from, log_speed
    from .model_bundle import open_bundle

    device = pick_device(device, precision, threads)
    skipper = Skipper(skip_bad)
    arguments = list(audio) or ["-"]
    inputs = inputs_from(arguments, skipper)
    if "-" not in arguments:
        inputs = list(inputs)  # every file's header read first: a bad file stops before the models load
    started = time.perf_counter()
    with open_bundle(bundle) as opened:
        classifier = Classifier(opened, device)
    written = 0
    with atomic_output(output) as out:
        for _, result in classifier.classify(inputs, skipper, top_k, batch_seconds=batch_seconds,
                                             batch_size=batch_size, max_tokens=max_tokens, precision=precision,
                                             total=len(inputs) if isinstance(inputs, list) else None):
            if result is not None:
                out.write(result.row() + "\n")
                written += 1
    skipper.report("inputs")
    log_speed(written, classifier.audio_seconds, started)
