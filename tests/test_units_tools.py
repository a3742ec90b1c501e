"""sp-dedup and sp-lmdata: the stream tools on units tables and LM data; the shipped real units (.gz)."""
import gzip

from conftest import REAL_UNITS, SHIPPED_UNITS, shell, sp

# Lines of the shipped units; every STRIDE-th line (the 1st, the STRIDE+1-th, ...) is in the tests' slice.
SHIPPED = {"train": (51094, 170), "valid": (6804, 22), "test": (3081, 10)}


def test_dedup_merges_runs_and_keeps_id_and_label():
    out = sp("dedup", input="a|1 1 2 2 2 3 1|yes\n").stdout
    assert out == "a\t1 2 3 1\tyes\n"


def test_dedup_durations_sum_over_runs_and_compose():
    out = sp("dedup", "--durations", input="a\t5 5 5 7 5 5\tgo\n").stdout
    assert out == "a\t5 7 5\tgo\t3 1 2\n"
    # deduping again keeps the durations (runs are already merged)
    assert sp("dedup", "--durations", input=out).stdout == out


def test_tsv_and_gslm_inputs_agree_and_labels_stay_labels():
    gslm = "u1|3 3 4|1 8 20\nu2|9|\n"
    tsv = "u1\t3 3 4\t1 8 20\nu2\t9\t\n"
    assert sp("dedup", input=gslm).stdout == sp("dedup", input=tsv).stdout == "u1\t3 4\t1 8 20\nu2\t9\t\n"
    lm = sp("lmdata", "--skip-bad", input=gslm)
    assert lm.stdout == "u1\t3 3 4 <s> 1 8 20\n"  # the unlabelled u2 is skipped, counted
    assert "skipped 1 bad utterances" in lm.stderr


def test_lmdata_no_label_writes_units_only():
    assert sp("lmdata", "--no-label", input="a|1 2|yes\n").stdout == "a\t1 2\n"


def test_bad_unit_names_file_and_line(tmp_path):
    src = tmp_path / "units.txt"
    src.write_text("a|1 2|yes\nb|1 x|no\n")
    out = tmp_path / "out.tsv"
    result = sp("dedup", src, "-o", out, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"sp-dedup: error: {src}:2: unit 'x' is not a non-negative integer"]
    assert not out.exists() and list(tmp_path.iterdir()) == [src]  # no partial output, no temp left


def test_duplicate_ids_fail_or_skip_counted():
    text = "a|1|yes\nb|2|no\na|1|yes\n"
    failed = sp("lmdata", input=text, check=False)
    assert failed.returncode == 1 and "<stdin>:3: duplicate id 'a' (first at <stdin>:1)" in failed.stderr
    skipped = sp("dedup", "--skip-bad", input=text)
    assert skipped.stdout == "a\t1\tyes\nb\t2\tno\n"
    assert "skipped 1 bad lines" in skipped.stderr


def test_missing_separator_in_lm_data_is_reported():
    from speechprompt.io import BadInput, parse_lm
    import pytest
    with pytest.raises(BadInput, match="f:7: expected exactly one <s>"):
        parse_lm("a\t1 2 3 yes", "f:7")


def test_real_units_through_dedup_and_lmdata(real_units):
    result = shell(f"sp-dedup {real_units}/test.txt | sp-lmdata")
    assert result.returncode == 0, result.stderr
    source = (real_units / "test.txt").read_text().splitlines()
    out = result.stdout.splitlines()
    assert len(out) == len(source)
    for src, line in zip(source, out):
        name, units, label = src.split("|")
        uid, text = line.split("\t")
        kept, _, lab = text.partition(" <s> ")
        assert uid == name and lab == label
        kept = kept.split()
        assert all(a != b for a, b in zip(kept, kept[1:]))
        # dedup keeps exactly the first unit of every run
        runs = [u for i, u in enumerate(units.split()) if i == 0 or units.split()[i - 1] != u]
        assert kept == runs


def test_lmdata_max_units_crops_head_center_or_tail_and_counts():
    text = "long\t0 1 2 3 4 5 6 7 8 9\tyes\nshort\t7 8\tno\nodd\t0 1 2 3 4 5 6\tno\n"
    kept = {}
    for crop in ("head", "center", "tail"):
        result = sp("lmdata", "--max-units", 4, "--crop", crop, input=text)
        kept[crop] = result.stdout.splitlines()
        assert "cropped 2 to 4 units" in result.stderr and f"(kept the {crop})" in result.stderr
    assert kept["head"] == ["long\t0 1 2 3 <s> yes", "short\t7 8 <s> no", "odd\t0 1 2 3 <s> no"]
    assert kept["center"] == ["long\t3 4 5 6 <s> yes", "short\t7 8 <s> no", "odd\t1 2 3 4 <s> no"]
    assert kept["tail"] == ["long\t6 7 8 9 <s> yes", "short\t7 8 <s> no", "odd\t3 4 5 6 <s> no"]
    assert sp("lmdata", "--no-label", "--max-units", 3, input=text).stdout.splitlines()[0] == "long\t3 4 5"
    assert sp("lmdata", input=text).stdout.splitlines()[0] == "long\t0 1 2 3 4 5 6 7 8 9 <s> yes"  # no crop asked
    assert sp("lmdata", "--max-units", 0, input=text, check=False).returncode == 2


def test_the_shipped_units_read_through_gzip_and_the_tests_slice_is_cut_from_them(tmp_path):
    for split, (count, stride) in SHIPPED.items():
        shipped = gzip.open(SHIPPED_UNITS / f"{split}.txt.gz", "rt", encoding="utf-8").read().splitlines()
        assert len(shipped) == count and all(len(line.split("|")) == 3 for line in shipped)
        assert (REAL_UNITS / f"{split}.txt").read_text().splitlines() == shipped[::stride]
    # a tool reads the .gz as it is: the same table as from the plain text (valid repeats ids: skipped, counted)
    plain = tmp_path / "valid.txt"
    plain.write_text(gzip.open(SHIPPED_UNITS / "valid.txt.gz", "rt", encoding="utf-8").read())
    from_gz = sp("dedup", "--skip-bad", SHIPPED_UNITS / "valid.txt.gz")
    assert from_gz.stdout == sp("dedup", "--skip-bad", plain).stdout
    assert len(from_gz.stdout.splitlines()) == 3370 and "skipped 3434 bad lines" in from_gz.stderr


def test_a_corrupt_or_truncated_gz_is_one_error_line_at_its_file_and_line(tmp_path):
    whole = gzip.compress("".join(f"u{i}|1 2 3|yes\n" for i in range(20000)).encode())
    for name, data, reason in [("cut.txt.gz", whole[: len(whole) // 2], "ended before the end-of-stream marker"),
                               ("plain.txt.gz", b"u1|1 2|yes\n", "Not a gzipped file")]:
        (tmp_path / name).write_bytes(data)
        result = sp("dedup", tmp_path / name, "-o", tmp_path / "out.tsv", check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        line = result.stderr.strip()
        assert line.startswith(f"sp-dedup: error: {tmp_path / name}:") and reason in line and "\n" not in line
        assert not (tmp_path / "out.tsv").exists()
