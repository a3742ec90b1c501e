"""Many classes (VoxCeleb1's 1,251 speakers is the real case) on tiny data: 150 labels, more than the uLM's
100 unit tokens, through the spelled verbalizer and through the linear verbalizer; predictions stay keyed by id."""
import json
import random

import pytest

from conftest import sp
from prompt_fixtures import make_lm
from speechprompt.checkpoints import load_checkpoint

CLASSES = 150


@pytest.fixture(scope="module")
def speakers(tmp_path_factory):
    """Units tables where each of 150 speakers has its own three-unit motif among random units, and a uLM."""
    root = tmp_path_factory.mktemp("many")
    rng = random.Random(0)
    motif = {c: [rng.randrange(100) for _ in range(3)] for c in range(CLASSES)}
    truth = {}
    for split, per_class in [("train", 2), ("valid", 1), ("test", 1)]:
        rows = []
        for c in range(CLASSES):
            for k in range(per_class):
                units = [rng.randrange(100) for _ in range(rng.randint(3, 8))] + motif[c]
                uid = f"{split}/spk{c:03d}_{k}"
                truth[uid] = f"spk{c:03d}"
                rows.append(f"{uid}\t{' '.join(map(str, units))}\tspk{c:03d}\n")
        rng.shuffle(rows)
        (root / f"{split}.tsv").write_text("".join(rows))
        sp("lmdata", root / f"{split}.tsv", "-o", root / f"{split}.lm")
    lm = make_lm(str(root / "lm"), units=100, normalize_before=True)
    return root, lm, truth


@pytest.mark.slow
@pytest.mark.parametrize("method", ["spelled", "learnable"])
def test_150_classes_train_and_decode_keyed_by_id(speakers, method):
    root, lm, truth = speakers
    out = root / method
    dictionary = root / "lm" / "dict.txt"
    sp("verbalize", "fit", "--method", method, "--dict", dictionary, root / "train.lm", "-o", out / "v.json")
    spec = json.loads((out / "v.json").read_text())
    assert spec["length"] == 2 and len(spec["classes"]) == CLASSES  # 100 tokens < 150 classes <= 100 ** 2
    for split in ("train", "valid", "test"):
        sp("verbalize", "apply", out / "v.json", root / f"{split}.lm", "-o", out / f"{split}.vlm")
    assert all(len(line.split("<s>")[1].split()) == 2 for line in (out / "test.vlm").read_text().splitlines())
    sp("binarize", "--dict", dictionary, "--out", out / "bin",
       *(f"{split}={out / f'{split}.vlm'}" for split in ("train", "valid", "test")))
    linear = ["--linear-verbalizer"] if method == "learnable" else []
    sp("train", out / "bin", "--base", lm, "-o", out / "prompt.pt", "--max-epoch", 1, "--batch-size", 32,
       "--lr", 1e-2, "--seed", 1, "--device", "cpu", *linear)
    checkpoint = load_checkpoint(str(out / "prompt.pt"))
    assert len(checkpoint["labels"]) == CLASSES
    assert checkpoint["config"]["num_classes"] == (CLASSES if linear else 0)
    run = sp("sample", out / "bin", "--prompt", out / "prompt.pt", "--verbalizer", out / "v.json",
             "--device", "cpu", "-o", out / "test.jsonl")
    assert f"{CLASSES} candidates" in run.stderr
    records = [json.loads(line) for line in (out / "test.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == (out / "bin" / "test.id").read_text().split("\n")[:CLASSES]
    assert sorted(r["id"] for r in records) == sorted(uid for uid in truth if uid.startswith("test/"))
    names = set(truth.values())
    for record in records:
        assert record["label"] == truth[record["id"]]  # the truth travelled with its id
        assert record["prediction"] in names and set(record["scores"]) == names
        assert abs(sum(record["scores"].values()) - 1) < 1e-3
