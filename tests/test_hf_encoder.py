"""The hf-hubert encoder (transformers' HubertModel: TWIST's mHuBERT-25Hz), and frame rates that disagree.

A tiny random HubertModel of mHuBERT-25Hz's layout (HuBERT base's conv stack plus a stride-2 convolution,
batch-normed positional convolution) is built and saved here. Skipped without `transformers`.
"""
import joblib
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

transformers = pytest.importorskip("transformers", reason="the hf-hubert encoder needs the optional `transformers`")

from test_quantize import corpus, run, table  # noqa: E402
from speechprompt import encoders, kmeans, quantize  # noqa: E402
from speechprompt.kmeans_model import save_kmeans  # noqa: E402


def save_hf_hubert(directory, rate=25, layers=3, seed=0):
    """A random HubertModel whose convolutions give `rate` frames a second at 16 kHz (25: mHuBERT-25Hz's)."""
    strides, kernels = [5, 2, 2, 2, 2, 2, 2], [10, 3, 3, 3, 3, 2, 2]  # HuBERT base: 50 frames/s
    if rate == 25:
        strides, kernels = strides + [2], kernels + [2]
    config = transformers.HubertConfig(hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                                       intermediate_size=32, conv_dim=[8] * len(strides), conv_stride=strides,
                                       conv_kernel=kernels, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
                                       conv_pos_batch_norm=True, feat_extract_norm="group")
    torch.manual_seed(seed)
    model = transformers.HubertModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(directory)
    return directory


def test_layer_features_equal_the_models_own_hidden_states_at_25_frames_a_second(tmp_path):
    directory = save_hf_hubert(tmp_path / "mhubert")
    encoder = encoders.build("hf-hubert", torch.device("cpu"), checkpoint=str(directory / "config.json"), layer=2)
    assert encoder.hop == 25 and encoder.dim == 16
    assert encoder.spec() == {"encoder": "hf-hubert", "layer": 2, "dim": 16, "normalize": False, "hop": 25.0}
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    (ours,) = encoder.features([wave])
    model = transformers.HubertModel.from_pretrained(directory).eval()
    with torch.no_grad():
        theirs = model(torch.from_numpy(wave)[None], output_hidden_states=True).hidden_states[2][0]
    assert ours.shape == theirs.shape == (encoder.frames(16000), 16) and 23 <= ours.shape[0] <= 25
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_sp_quantize_on_hf_hubert_with_its_own_kmeans(tmp_path):
    directory = save_hf_hubert(tmp_path / "mhubert")
    manifest = corpus(tmp_path, n=4)
    km = tmp_path / "km.npz"
    assert run(kmeans.main, manifest, "-o", km, "-k", 3, "--encoder", "hf-hubert", "--checkpoint", directory,
               "--layer", 2).exit_code == 0
    result = run(quantize.main, manifest, "--kmeans", km, "--encoder", "hf-hubert", "--checkpoint", directory,
                 "--layer", 2)
    rows = table(result.stdout)
    assert [r[0] for r in rows] == [f"clip/{i:02d}" for i in range(4)]
    assert all(len(r[1].split()) == 24 for r in rows)  # 1 s at 25 frames/s


def test_an_encoder_and_kmeans_of_different_frame_rates_are_refused_in_one_line(tmp_path):
    hubert25, hubert50 = save_hf_hubert(tmp_path / "h25", 25), save_hf_hubert(tmp_path / "h50", 50)
    manifest = corpus(tmp_path, n=2)
    encoder25 = encoders.build("hf-hubert", torch.device("cpu"), checkpoint=str(hubert25), layer=2)
    centres = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    npz = tmp_path / "km25.npz"
    save_kmeans(str(npz), centres, encoder25.spec())  # sp-kmeans' file: the rate is in its spec
    pickled = tmp_path / "km.bin"  # textlesslib's and GSLM's: a joblib KMeans, the rate given with --kmeans-rate
    joblib.dump(KMeans(n_clusters=5, n_init=1).fit(centres), pickled)
    for km, extra in ((npz, []), (pickled, ["--kmeans-rate", 25])):
        result = run(quantize.main, manifest, "--kmeans", km, *extra, "--encoder", "hf-hubert", "--checkpoint",
                     hubert50, "--layer", 2, "-o", tmp_path / "units.tsv")
        message = result.stderr if hasattr(result, "stderr") else result.output
        assert result.exit_code == 1 and message.count("\n") == 1, message
        assert "a k-means of 25-frame/s features, but the hf-hubert encoder gives 50 frames/s" in message
        assert not (tmp_path / "units.tsv").exists()
    ok = run(quantize.main, manifest, "--kmeans", pickled, "--kmeans-rate", 50, "--encoder", "hf-hubert",
             "--checkpoint", hubert50, "--layer", 2)
    assert ok.exit_code == 0 and len(table(ok.stdout)) == 2
