"""sp-binarize: the same bytes as fairseq-preprocess, ids alongside, dictionaries, errors."""
import filecmp

import numpy as np

from click.testing import CliRunner

from conftest import shell, sp
from speechprompt import binarize

GSLM_DICT = "".join(f"{i} 1\n" for i in range(100))


def lm_rows(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return [f"utt/{i:03d}\t{' '.join(map(str, rng.integers(0, 100, rng.integers(3, 30))))} <s> {rng.integers(0, 12)}"
            for i in range(n)]


def read_bin(prefix):
    from fairseq.data.indexed_dataset import MMapIndexedDataset

    return [dataset.tolist() for dataset in MMapIndexedDataset(str(prefix))]


def test_same_bytes_as_fairseq_preprocess(tmp_path):
    rows = lm_rows()
    (tmp_path / "train.lm").write_text("\n".join(rows) + "\n")
    (tmp_path / "train.txt").write_text("".join(r.split("\t")[1] + "\n" for r in rows))
    (tmp_path / "dict.txt").write_text(GSLM_DICT)
    sp("binarize", "--dict", tmp_path / "dict.txt", "--out", tmp_path / "ours", f"train={tmp_path / 'train.lm'}")
    from fairseq import options
    from fairseq_cli import preprocess

    preprocess.main(options.get_preprocessing_parser().parse_args(
        ["--only-source", "--srcdict", str(tmp_path / "dict.txt"), "--trainpref", str(tmp_path / "train.txt"),
         "--destdir", str(tmp_path / "theirs"), "--workers", "1"]))  # what `fairseq-preprocess` runs
    for name in ("train.bin", "train.idx", "dict.txt"):
        assert filecmp.cmp(tmp_path / "ours" / name, tmp_path / "theirs" / name, shallow=False), name
    assert (tmp_path / "ours" / "train.id").read_text().splitlines() == [r.split("\t")[0] for r in rows]
    first = read_bin(tmp_path / "ours" / "train")[0]
    units, label = rows[0].split("\t")[1].split(" <s> ")
    assert first == [int(u) + 4 for u in units.split()] + [0, int(label) + 4, 2]  # <s> is bos 0, eos 2


def test_generated_dictionary_and_errors(tmp_path):
    rows = ["a\t3 1 <s> 5", "b\t2 7 7"]
    runner = CliRunner()  # in-process: fairseq is imported once
    made = runner.invoke(binarize.main, ["--out", str(tmp_path / "bin"), "train=-"], input="\n".join(rows) + "\n")
    assert made.exit_code == 0, made.output
    assert (tmp_path / "bin" / "dict.txt").read_text() == "".join(f"{i} 1\n" for i in range(8))
    assert read_bin(tmp_path / "bin" / "train") == [[7, 5, 0, 9, 2], [6, 11, 11, 2]]
    made = runner.invoke(binarize.main, ["--units", "100", "--out", str(tmp_path / "bin"), "valid=-"], input=rows[1])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "bin" / "dict.txt").read_text() == GSLM_DICT
    assert not (tmp_path / "bin" / "train.bin").exists()  # DIR is replaced as a whole
    (tmp_path / "dict.txt").write_text("".join(f"{i} 1\n" for i in range(5)))
    bad = sp("binarize", "--dict", tmp_path / "dict.txt", "--out", tmp_path / "bad", "train=-",
             input="a\t1 2 <s> 3\nb\t1 <s> 9\n", check=False)
    assert bad.returncode == 1 and "<stdin>:2: token '9' is not in the dictionary" in bad.stderr
    assert not (tmp_path / "bad").exists()
    dup = sp("binarize", "--out", tmp_path / "dup", "train=-", input="a\t1\na\t2\n", check=False)
    assert dup.returncode == 1 and "duplicate id 'a'" in dup.stderr


def test_real_units_through_verbalize_and_binarize(tmp_path, real_units):
    (tmp_path / "dict.txt").write_text(GSLM_DICT)
    run = shell(f"""set -e
        for s in train valid; do
          sp-dedup --skip-bad {real_units}/$s.txt 2>/dev/null | head -300 | sp-lmdata > $s.lm 2>/dev/null
        done
        sp-verbalize fit --method freq --dict dict.txt train.lm -o v.json
        for s in train valid; do sp-verbalize apply v.json $s.lm -o $s.vlm; done
        sp-binarize --dict dict.txt --out bin train=train.vlm valid=valid.vlm""", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    for split in ("train", "valid"):
        rows = (tmp_path / f"{split}.vlm").read_text().splitlines()
        assert (tmp_path / "bin" / f"{split}.id").read_text().splitlines() == [r.split("\t")[0] for r in rows]
        decoded = [" ".join("<s>" if i == 0 else str(i - 4) for i in seq[:-1]) for seq in read_bin(tmp_path / "bin" / split)]
        assert decoded == [r.split("\t")[1] for r in rows]
