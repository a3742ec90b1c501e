"""sp-verbalize: fit / apply / invert, every method, multi-slot labels, the errors."""
import collections
import json
import random

import pytest

from conftest import sp
from speechprompt.io import BadInput, parse_lm
from speechprompt.verbalizer import METHODS, apply, fit, load_verbalizer

FSC = [("activate", "lights", "kitchen"), ("deactivate", "lights", "none"), ("increase", "volume", "none"),
       ("bring", "1", "none"), ("change language", "none", "none")]  # `1` is a label value, not a unit


def lm_lines(n=60, seed=0, labels=FSC, vocab=50):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = " ".join(labels[i % len(labels)]).split()
        units = [str((int(rng.paretovariate(1.0)) - 1) % vocab) for _ in range(rng.randint(3, 12))]
        rows.append(f"u{i:03d}\t{' '.join(units)} <s> {' '.join(label)}")
    return rows


def parsed(rows):
    return [parse_lm(row, f"x:{i}") for i, row in enumerate(rows, 1)]


@pytest.mark.parametrize("method", METHODS)
def test_round_trip_every_method(method):
    lines = parsed(lm_lines())
    vocabulary = [str(i) for i in range(50)] + ["activate", "deactivate", "increase", "bring", "change",
                                                 "language", "lights", "volume", "1", "none", "kitchen"]
    verbalizer = fit(lines, method, seed=3, vocabulary=vocabulary)
    assert len(set(verbalizer.map.values())) == len(verbalizer.map)  # injective
    assert sorted(verbalizer.classes) == sorted({v for line in lines for v in line.label})
    assert verbalizer.num_slots == 4  # `change language none none`
    for line in lines:
        out = apply(verbalizer, line)
        assert out.units == line.units and out.id == line.id
        assert all(token in vocabulary for token in out.label)
        assert verbalizer.decode(out.label) == " ".join(line.label)
        assert apply(verbalizer, out, invert=True).label == line.label


def test_multi_slot_values_map_once_and_unit_like_values_are_labels():
    lines = parsed(lm_lines())
    verbalizer = fit(lines, "freq")
    assert list(verbalizer.map).count("none") == 1
    bring = next(line for line in lines if line.label[0] == "bring")
    tokens = verbalizer.encode(bring.label)
    assert tokens[1] == verbalizer.map["1"]  # the label `1` is mapped like any other value
    assert verbalizer.decode(tokens) == "bring 1 none"
    learnable = fit(lines, "learnable")
    assert [learnable.map[v] for v in learnable.classes] == [str(i) for i in range(len(learnable.classes))]
    assert learnable.index["1"] == int(learnable.map["1"])


def test_freq_maps_by_rank():
    rows = [f"a{i}\t7 7 7 5 5 9 <s> {'x' if i < 5 else 'y' if i < 8 else 'z'}" for i in range(9)]
    verbalizer = fit(parsed(rows), "freq")
    assert verbalizer.map == {"x": "7", "y": "5", "z": "9"}
    assert verbalizer.classes == ["x", "y", "z"]


def test_random_is_seeded():
    lines = parsed(lm_lines(labels=[(str(i),) for i in range(12)]))
    vocabulary = [str(i) for i in range(100)]
    first, again = (fit(lines, "random", seed=1, vocabulary=vocabulary) for _ in range(2))
    assert first.map == again.map
    assert fit(lines, "random", seed=2, vocabulary=vocabulary).map != first.map


def test_errors():
    few_units = parsed([f"a{i}\t1 2 1 <s> c{i}" for i in range(3)])
    with pytest.raises(BadInput, match="3 label values but only 2 distinct source tokens"):
        fit(few_units, "freq")
    with pytest.raises(BadInput, match="not among the dictionary tokens"):
        fit(parsed(lm_lines()), "identity", vocabulary=[str(i) for i in range(100)])
    verbalizer = fit(parsed(lm_lines()), "freq")
    with pytest.raises(BadInput, match=r"y:7: label value never seen in train: 'dim'"):
        apply(verbalizer, parse_lm("b\t1 2 <s> dim", "y:7"))


def test_cli_fit_apply_invert(tmp_path):
    rows = lm_lines(40)
    (tmp_path / "train.lm").write_text("\n".join(rows) + "\n")
    (tmp_path / "dict.txt").write_text("".join(f"{i} 1\n" for i in range(100)))
    sp("verbalize", "fit", "--method", "freq", "--dict", tmp_path / "dict.txt", tmp_path / "train.lm",
       "-o", tmp_path / "v.json")
    spec = json.loads((tmp_path / "v.json").read_text())
    assert spec["format"] == "speechprompt-verbalizer/1" and spec["method"] == "freq"
    assert load_verbalizer(tmp_path / "v.json").map == spec["map"]
    applied = sp("verbalize", "apply", tmp_path / "v.json", input="\n".join(rows) + "\n").stdout
    assert all(t in spec["map"].values() for line in applied.splitlines() for t in line.split("<s>")[1].split())
    assert sp("verbalize", "invert", tmp_path / "v.json", input=applied).stdout.splitlines() == rows
    unseen = rows[0].rsplit("<s>", 1)[0] + "<s> dim lights none\n"
    bad = sp("verbalize", "apply", tmp_path / "v.json", input=rows[1] + "\n" + unseen, check=False)
    assert bad.returncode == 1 and "<stdin>:2: label value never seen in train: 'dim'" in bad.stderr
    skipped = sp("verbalize", "apply", "--skip-bad", tmp_path / "v.json", input=rows[1] + "\n" + unseen)
    assert len(skipped.stdout.splitlines()) == 1 and "skipped 1 bad lines" in skipped.stderr


def test_spelled_writes_1251_classes_as_two_unit_tokens_each():
    rng = random.Random(5)
    speakers = [f"id{10001 + i}" for i in range(1251)]
    rows = [f"u{i:05d}\t{' '.join(str(rng.randrange(100)) for _ in range(6))} <s> {speaker}"
            for i, speaker in enumerate(speakers * 2)]
    lines = parsed(rows)
    vocabulary = [str(i) for i in range(100)]
    verbalizer = fit(lines, "spelled", vocabulary=vocabulary)
    assert verbalizer.length == 2 and len(verbalizer.classes) == 1251  # 100 ** 1 < 1251 <= 100 ** 2
    spellings = [verbalizer.map[v].split() for v in verbalizer.classes]
    assert all(len(s) == 2 and all(t in vocabulary for t in s) for s in spellings)
    assert len({tuple(s) for s in spellings}) == 1251  # injective
    # digit d is the d-th most frequent train unit: class index = first digit * 100 + second digit
    units = collections.Counter(u for line in lines for u in line.units)
    digit = {u: d for d, u in enumerate(sorted(vocabulary, key=lambda u: (-units[u], int(u))))}
    assert [digit[a] * 100 + digit[b] for a, b in spellings] == list(range(1251))
    for line in lines[:50]:
        out = apply(verbalizer, line)
        assert len(out.label) == 2 and verbalizer.decode(out.label) == line.label[0]
        assert apply(verbalizer, out, invert=True).label == line.label
    with pytest.raises(BadInput, match="token of no class"):
        apply(verbalizer, parse_lm("b\t1 2 <s> 3", "y:1"), invert=True)  # one token: half a spelling


def test_spelled_with_fewer_classes_than_units_is_freq_and_multi_slot_labels_spell_each_value():
    lines = parsed(lm_lines())
    assert fit(lines, "spelled").map == fit(lines, "freq").map
    few = [str(i) for i in range(3)]  # 3 digits for 11 values: 3 tokens a value
    verbalizer = fit(lines, "spelled", vocabulary=few + ["activate"])
    assert verbalizer.length == 3
    bring = next(line for line in lines if line.label[0] == "bring")
    assert len(apply(verbalizer, bring).label) == 3 * 3
    assert verbalizer.decode(verbalizer.encode(bring.label)) == "bring 1 none"


def test_learnable_spells_class_indices_past_the_vocabulary_in_numeric_order():
    lines = parsed([f"u{i}\t1 2 <s> c{i:03d}" for i in range(150)])
    verbalizer = fit(lines, "learnable", vocabulary=[str(i) for i in range(100)])
    assert verbalizer.length == 2
    assert [verbalizer.map[v] for v in verbalizer.classes[:3]] == ["0 0", "0 1", "0 2"]
    assert verbalizer.map[verbalizer.classes[149]] == "1 49"
