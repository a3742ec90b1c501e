"""--device and --precision: what each tool accepts, and the usage errors (the GPU side is in test_cuda.py)."""
import click
import pytest
import torch

from conftest import sp
from speechprompt.io import pick_device
from speechprompt.precision import autocast


def test_cpu_and_auto_without_a_gpu_are_the_cpu_in_fp32():
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert pick_device("auto") == torch.device("cpu")
    with autocast(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")  # CPU runs stay fp32


@pytest.mark.parametrize("name, message", [("tpu", "expected auto, cpu, cuda or cuda:N"),
                                           ("cuda:x", "expected auto, cpu, cuda or cuda:N"),
                                           ("mps", "expected auto, cpu, cuda or cuda:N")])
def test_a_device_that_is_not_cpu_or_cuda_is_a_usage_error(name, message):
    with pytest.raises(click.UsageError, match=message):
        pick_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_is_a_usage_error(name):
    with pytest.raises(click.UsageError, match="sees no CUDA device"):
        pick_device(name)


def test_half_precision_on_the_cpu_is_a_usage_error():
    with pytest.raises(click.UsageError, match="needs a GPU"):
        pick_device("cpu", "bf16")


def test_sp_sample_reports_a_bad_device_in_one_line(tmp_path):
    (tmp_path / "p.pt").write_bytes(b"")
    run = sp("sample", tmp_path, "--prompt", tmp_path / "p.pt", "--device", "gpu0", check=False)
    assert run.returncode == 2 and "expected auto, cpu, cuda or cuda:N" in run.stderr
    assert "Traceback" not in run.stderr
