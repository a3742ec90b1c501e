"""`make -j N QUANTIZE_SHARDS=N`: each split quantized as N shard targets at once, joined in order: the same bytes."""
import subprocess

import pytest

from conftest import ROOT


def make(*args):
    result = subprocess.run(["make", "--no-print-directory", *map(str, args)], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


@pytest.mark.slow
def test_sharded_quantizing_writes_the_units_of_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    # one process a split: the synthetic corpus, its manifests, k-means and units
    make("TASK=SCR", f"EXP={one}", "SYNTH_SPEAKERS=6", "K=12", "units")
    # the same corpus and k-means, each split as 2 shards quantized by 2 jobs
    shared = ["TASK=SCR", f"EXP={two}", f"DATA={one}/corpus", f"KMEANS={one}/km.bin", "QUANTIZE_SHARDS=2"]
    planned = make("-n", *shared, "units").stdout
    for split in ("train", "valid", "test"):
        for shard in (0, 1):
            assert f"--shard {shard} --num-shards 2 {two}/manifest/{split}.tsv -o {two}/units/shards/{split}.{shard}-of-2.tsv" in planned
    make("-j", 2, *shared, "units")
    for split in ("train", "valid", "test"):
        shards = [(two / "units" / "shards" / f"{split}.{i}-of-2.tsv").read_bytes() for i in (0, 1)]
        assert all(shards), split  # both shards hold utterances
        assert (two / "units" / f"{split}.tsv").read_bytes() == (one / "units" / f"{split}.tsv").read_bytes(), split
    assert make("-q", *shared, "units").returncode == 0  # and it is up to date
