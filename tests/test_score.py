"""sp-score on hand-made cases: accuracy, macro-F1, multi-slot exact match, EER, confusion PNG."""
import json

import pytest

from conftest import sp
from speechprompt.score import eer, metrics


def jsonl(records):
    return "".join(json.dumps(r) + "\n" for r in records)


def test_accuracy_and_macro_f1_by_hand():
    pairs = [("a", "a"), ("a", "b"), ("b", "b"), ("c", "c"), ("c", "a")]
    m = metrics(pairs)
    assert m["accuracy"] == pytest.approx(3 / 5)
    # per class F1: a: p=1/2 r=1/2 -> 1/2; b: p=1/2 r=1 -> 2/3; c: p=1 r=1/2 -> 2/3
    assert m["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)
    assert m["confusion"]["truth"] == ["a", "b", "c"]
    assert m["confusion"]["counts"] == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert "slot_accuracy" not in m and "eer" not in m


def test_multi_slot_exact_match_and_per_slot_accuracy():
    pairs = [("on lights kitchen", "on lights kitchen"), ("off lights kitchen", "on lights kitchen"),
             ("on music none", "on lights none"), ("off lamp bedroom", "off lamp washroom")]
    m = metrics(pairs)
    assert m["accuracy"] == pytest.approx(1 / 4)
    assert m["slot_accuracy"] == pytest.approx([3 / 4, 3 / 4, 3 / 4])


def test_eer_known_cases():
    truth = [True] * 4 + [False] * 4
    assert eer(truth, [0.9, 0.8, 0.7, 0.2, 0.1, 0.3, 0.4, 0.75]) == pytest.approx(0.25)
    assert eer(truth, [0.9, 0.8, 0.7, 0.6, 0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.0)
    assert eer(truth, [0.1, 0.2, 0.3, 0.4, 0.9, 0.8, 0.7, 0.6]) == pytest.approx(1.0)


def test_cli_binary_task_writes_metrics_eer_and_png(tmp_path):
    scores = [0.9, 0.8, 0.7, 0.2, 0.1, 0.3, 0.4, 0.75]
    records = [{"id": f"u{i}", "label": "yes" if i < 4 else "no", "prediction": "yes" if s >= 0.5 else "no",
                "score": max(s, 1 - s), "scores": {"yes": s, "no": 1 - s}} for i, s in enumerate(scores)]
    (tmp_path / "p.jsonl").write_text(jsonl(records))
    run = sp("score", tmp_path / "p.jsonl", "-o", tmp_path / "metrics.json", "--confusion", tmp_path / "cm.png",
             "--positive", "yes")
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["accuracy"] == pytest.approx(6 / 8) and m["eer"] == pytest.approx(0.25) and m["n"] == 8
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "accuracy 0.7500" in run.stderr and run.stdout == ""


def test_cli_reference_join_counts_missing_and_ignores_extra(tmp_path):
    (tmp_path / "p.jsonl").write_text(jsonl([{"id": "b", "prediction": "no"}, {"id": "a", "prediction": "yes"},
                                             {"id": "zz", "prediction": "yes"}]))
    (tmp_path / "ref.txt").write_text("a|1 2|yes\nb|3|yes\nc|4 4|no\n")  # GSLM form
    m = json.loads(sp("score", tmp_path / "p.jsonl", "--reference", tmp_path / "ref.txt").stdout)
    assert m["n"] == 3 and m["accuracy"] == pytest.approx(1 / 3)
    assert m["missing"] == 1 and m["unscored"] == 1


def test_cli_bad_line_is_one_error_line_or_skipped(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"id": "a", "label": "x", "prediction": "x"}\nnot json\n')
    bad = sp("score", tmp_path / "p.jsonl", check=False)
    assert bad.returncode == 1 and f"{tmp_path / 'p.jsonl'}:2" in bad.stderr
    good = sp("score", tmp_path / "p.jsonl", "--skip-bad")
    assert json.loads(good.stdout)["accuracy"] == 1.0 and "skipped 1 bad records" in good.stderr
    dup = tmp_path / "d.jsonl"
    dup.write_text('{"id": "a", "label": "x", "prediction": "x"}\n{"id": "a", "label": "x", "prediction": "y"}\n')
    assert "duplicate id" in sp("score", dup, check=False).stderr


def test_two_class_metrics_f1_of_the_positive_label_and_directions():
    pairs = [("spoof", "spoof"), ("spoof", "bonafide"), ("spoof", "spoof"), ("bonafide", "spoof"),
             ("bonafide", "bonafide"), ("bonafide", "bonafide")]
    scores = [{"spoof": s, "bonafide": 1 - s} for s in (0.9, 0.4, 0.8, 0.7, 0.2, 0.1)]
    m = metrics(pairs, scores, positive="spoof")
    # spoof: tp 2, fp 1, fn 1 -> precision 2/3, recall 2/3, F1 2/3
    assert m["f1"] == pytest.approx(2 / 3) and m["positive"] == "spoof"
    assert m["accuracy"] == pytest.approx(4 / 6) and m["macro_f1"] == pytest.approx(2 / 3)
    # ranking by the spoof score: 0.9 0.8 0.7(b) 0.4 0.2(b) 0.1(b) -> one false acceptance and one false rejection
    # at the threshold between 0.7 and 0.4 of three each: EER 1/3
    assert m["eer"] == pytest.approx(1 / 3)
    assert m["better"] == {"accuracy": "higher", "macro_f1": "higher", "f1": "higher", "eer": "lower"}
    other = metrics(pairs, scores, positive="bonafide")
    assert other["f1"] == pytest.approx(2 / 3) and other["eer"] == pytest.approx(1 / 3)


def test_f1_of_a_positive_label_in_a_many_class_task_has_no_eer():
    m = metrics([("a", "a"), ("a", "b"), ("b", "b"), ("c", "a")], positive="a")
    assert m["f1"] == pytest.approx(1 / 2) and "eer" not in m  # a: tp 1, fp 1, fn 1
    assert "f1" not in metrics([("a", "a"), ("b", "c"), ("c", "c")])


def test_cli_headline_metric_names_its_direction(tmp_path):
    scores = [0.9, 0.8, 0.7, 0.2, 0.1, 0.3, 0.4, 0.75]
    records = [{"id": f"u{i}", "label": "speech" if i < 4 else "noise", "prediction": "speech" if s >= 0.5 else "noise",
                "scores": {"speech": s, "noise": 1 - s}} for i, s in enumerate(scores)]
    (tmp_path / "p.jsonl").write_text(jsonl(records))
    m = json.loads(sp("score", tmp_path / "p.jsonl", "--metric", "eer", "--positive", "speech").stdout)
    assert m["headline"] == {"metric": "eer", "value": pytest.approx(0.25), "better": "lower"}
    assert m["better"]["eer"] == "lower" and m["positive"] == "speech"
    # without --positive a two-class task takes the second label in sorted order: `speech`
    m = json.loads(sp("score", tmp_path / "p.jsonl", "--metric", "f1").stdout)
    assert m["headline"]["metric"] == "f1" and m["headline"]["better"] == "higher" and m["positive"] == "speech"
    assert m["headline"]["value"] == pytest.approx(3 / 4)  # speech: tp 3, fp 1, fn 1
    assert json.loads(sp("score", tmp_path / "p.jsonl").stdout)["headline"]["metric"] == "accuracy"


def test_cli_a_metric_that_cannot_be_computed_or_an_unknown_positive_is_one_error_line(tmp_path):
    (tmp_path / "p.jsonl").write_text(jsonl([{"id": f"u{i}", "label": label, "prediction": label}
                                             for i, label in enumerate("abcab")]))
    bad = sp("score", tmp_path / "p.jsonl", "--metric", "eer", "-o", tmp_path / "m.json", check=False)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert "sp-score: error:" in bad.stderr and "--metric eer needs two classes" in bad.stderr
    assert not (tmp_path / "m.json").exists()
    bad = sp("score", tmp_path / "p.jsonl", "--positive", "z", check=False)
    assert bad.returncode == 1 and "--positive 'z' is not a true label" in bad.stderr
