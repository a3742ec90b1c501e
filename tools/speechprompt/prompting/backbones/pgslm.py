"""fairseq's multi-stream `transformer_ulm` (pGSLM, task `speech_unit_modeling`) as a backbone.

pGSLM (Kharitonov et al., 2022) reads three streams a position: the unit, its duration and its F0.
Each goes through its own embedding (or, continuous, a `Linear(1, D)`), and their sum is the layer
input; the layers are fairseq's `TransformerDecoderLayer`s, walked here with the same code as
`fairseq_lm` (deep prompts and a KV cache join each layer), and the output head `project_out_dim`
predicts the three streams, of which only the units' logits are used: the label is read from the
unit stream, and the prosody the model predicts at the label positions plays no part in the loss.

What the checkpoint's task config says is followed as fairseq's own `CodeDataset` and model do it:

- the **dictionary**: `UnitDictionary`, units at ids 0..n-1 and then `<s> <pad> </s> <unk>` (GSLM's
  `dict.txt` has the specials first); data-bins are read by symbol, so either kind of data-bin maps.
  pGSLM began each utterance with `<s>`; the interface starts a sentence with `</s>` (fairseq LM's
  convention), so an input `</s>` is embedded as `<s>` here;
- **durations**: `discrete_duration` caps them at `max_token_duration` (20) and embeds them, else the
  frame count is the value; `</s>`, `<s>`, the label and padding have duration 0;
- **F0**: the data-bin's cents from the speaker mean (prosody/__init__.py) go into the checkpoint's
  bins (`discrete_f0`: the F0 bins file, `companion` below) or, continuous, become the log-F0 ratio;
  a token that is no unit gets the F0 dictionary's `<s>` (discrete) or 0 (continuous), as pGSLM's
  utterance start does;
- **stream shifts** (`stream_shifts`, the published models' `1,1`): the prosody of token t enters at
  position t + shift; the first positions of a sentence get the padding value, as in training;
- `ignore_duration_input` / `ignore_f0_input` zero those inputs, as the model's forward does.

F0 bins (`discrete_f0`): a JSON `{"format": "speechprompt-f0-bins/1", "edges_cents": [31 numbers],
"unvoiced": "symbol"}` (sp-pretrain writes `f0_bins.json` beside its checkpoint; `symbol`: an unvoiced
unit has bin 32, one past the edges' 32 bins) or pGSLM's own `*_f0_bin.th` (`{32: edges}` in natural
log; an unvoiced unit is 0, the speaker's mean, as pGSLM's interpolation leaves it).
"""
from __future__ import annotations

import json
import os
import tempfile

import torch
import torch.nn.functional as F

from ...checkpoints import fairseq_globals, load_checkpoint, map_lm, refusing, require_lm
from ...io import BadInput
from ...prosody import CENTS_PER_LOG, NONE, UNVOICED
from . import Shape, Vocabulary
from .fairseq_lm import FairseqLM, _check_supported, identity  # noqa: F401 (identity: the checkpoint's sha256)
from .fairseq_lm import read_shape as _read_fairseq_shape

READS_STREAMS = True
BINS_NAME = "f0_bins.json"
BINS_FORMAT = "speechprompt-f0-bins/1"
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # UnitDictionary's order, after the units


def companion(path: str, given: str | None = None) -> str | None:
    """The F0 bins: the file given, else f0_bins.json beside the checkpoint if it is there."""
    if given:
        return given
    beside = os.path.join(os.path.dirname(os.path.abspath(path)), BINS_NAME)
    return beside if os.path.exists(beside) else None


def _require_ulm(state: dict, path: str) -> None:
    if "decoder.embed_other_list.0.weight" not in state["model"] and "decoder.proj_other_list.0.weight" not in \
            state["model"]:
        raise BadInput("refused: not a multi-stream transformer_ulm checkpoint (no decoder.embed_other_list or "
                       "proj_other_list weights); a transformer_lm is --backbone fairseq", path)


def _units(state: dict) -> tuple[int, int | None]:
    """(units, F0 bins) of the checkpoint from its embeddings' rows: UnitDictionary adds 4 specials to each."""
    model = state["model"]
    f0 = model.get("decoder.embed_other_list.1.weight")
    return int(model["decoder.embed_tokens.weight"].shape[0]) - 4, None if f0 is None else int(f0.shape[0]) - 4


def vocabulary(path: str, dict_path: str | None = None) -> Vocabulary:
    state = map_lm(path)
    _require_ulm(state, path)
    units, _ = _units(state)
    return _vocabulary(units)


def _vocabulary(units: int) -> Vocabulary:
    return Vocabulary([str(i) for i in range(units)] + list(SPECIALS), units, units + 2, units + 1, units + 3,
                      units=(0, units))


def read_shape(path: str):
    state = map_lm(path)
    _require_ulm(state, path)
    return _read_fairseq_shape(path)


def load(path: str, dict_path: str | None = None, device="cpu") -> PGSLM:
    """The checkpoint through fairseq's own `load_model_ensemble_and_task`: the task reads a data config
    (`n_units`, `f0_vq_n_units`), written here from the checkpoint's embeddings, as load_lm does dict.txt."""
    from fairseq import checkpoint_utils

    state = load_checkpoint(path)
    require_lm(state, path)
    _require_ulm(state, path)
    units, f0_units = _units(state)
    del state
    with tempfile.TemporaryDirectory() as data_dir:
        config = os.path.join(data_dir, "data_config.json")
        with open(config, "w", encoding="utf-8") as f:
            json.dump({"manifests": {}, "n_units": units, "f0_vq_n_units": f0_units or 0, "code_hop_size": 320,
                       "sampling_rate": 16000, "f0_vq_type": "precomp", "f0_vq_name": "f0"}, f)
        with refusing(path), fairseq_globals():
            models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides={"data": config})
    bins = read_bins(companion(path, dict_path)) if task.cfg.discrete_f0 else None
    with refusing(path):
        return PGSLM(models[0], task, bins).to(device).freeze()


def read_bins(path: str | None) -> tuple[list[float], bool]:
    """(edges in cents, whether unvoiced has a bin of its own) from f0_bins.json or pGSLM's *_f0_bin.th."""
    if path is None:
        raise BadInput(f"this pGSLM has discrete F0 and no F0 bins were found: give them with --base-dict "
                       f"(f0_bins.json, or pGSLM's *_f0_bin.th), or put {BINS_NAME} beside the checkpoint")
    if path.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                spec = json.load(f)
        except (OSError, ValueError) as error:
            raise BadInput(f"cannot read the F0 bins: {error}", path) from None
        if not isinstance(spec, dict) or spec.get("format") != BINS_FORMAT:
            raise BadInput(f'not F0 bins: expected {{"format": "{BINS_FORMAT}", "edges_cents": [...]}}', path)
        return [float(e) for e in spec["edges_cents"]], spec.get("unvoiced") == "symbol"
    table = load_checkpoint(path)  # pGSLM's bins: a torch pickle {bins: numpy edges}, through the allowlist
    edges = table.get(32, next(iter(table.values()), None)) if table else None
    if edges is None:
        raise BadInput("not pGSLM F0 bins (expected {32: edges})", path)
    return [float(e) * CENTS_PER_LOG for e in edges], False


class PGSLM(FairseqLM):
    kind = "pgslm"

    def __init__(self, model, task, bins):
        super(FairseqLM, self).__init__()  # FairseqLM's own __init__ reads a transformer_lm's dictionary
        self.model = model
        self._table = None  # FairseqLM._positions' table, made on first use
        dec = model.decoder
        _check_supported(dec)
        attn = dec.layers[0].self_attn
        cfg = task.cfg
        units = task.source_dictionary.n_units
        self.vocab = _vocabulary(units)
        self.shape = Shape(len(dec.layers), dec.embed_dim, attn.num_heads, attn.num_heads, attn.head_dim,
                           len(task.source_dictionary), model.max_positions())
        self.discrete_duration, self.discrete_f0 = bool(cfg.discrete_duration), bool(cfg.discrete_f0)
        self.max_duration = int(cfg.max_token_duration)
        self.shifts = [int(s) for s in str(cfg.stream_shifts).split(",")]
        self.ignore = (bool(cfg.ignore_duration_input), bool(cfg.ignore_f0_input))
        f0_dict = task.source_f0_dictionary
        if self.discrete_f0:
            edges, own_unvoiced = bins
            if len(edges) + 1 + own_unvoiced != f0_dict.n_units:
                raise BadInput(f"{len(edges)} F0 bin edges{' and an unvoiced bin' if own_unvoiced else ''} for a "
                               f"model of {f0_dict.n_units} F0 values")
            self.register_buffer("edges", torch.tensor(edges, dtype=torch.float32), persistent=False)
            unvoiced = len(edges) + 1 if own_unvoiced else int(torch.bucketize(torch.tensor(0.0), self.edges))
            self.f0_codes = (unvoiced, f0_dict.bos(), f0_dict.pad())  # unvoiced, no unit, padding
        self.units_out = len(task.source_dictionary)

    def embed_tokens(self, tokens):
        # `</s>` starts a sentence in the interface; pGSLM's utterances start with `<s>`
        return self.decoder.embed_tokens(torch.where(tokens == self.vocab.eos, self.vocab.bos, tokens))

    def _add_streams(self, x, positions, streams):
        """The duration and F0 embeddings summed into the scaled unit vectors, as pGSLM's decoder does; the
        rest of the layer input (projection, positions, norm, dropout) is transformer_lm's."""
        dec = self.decoder
        for value, embed, project in zip(self._stream_inputs(streams, positions, x.dtype), dec.embed_other_list,
                                         dec.proj_other_list):
            other = value.unsqueeze(-1).to(x.dtype) if embed is None else embed(value)
            x = x + (other if project is None else project(other))
        return x

    def _project_out(self, x):
        return x  # project_out_dim is pGSLM's output head: `logits`

    def logits(self, hidden):
        """The unit stream's logits: the first rows of the three-stream output head."""
        return F.linear(hidden, self.decoder.project_out_dim.weight[:self.units_out])

    def _stream_inputs(self, streams, positions, dtype):
        """(duration input, F0 input), B x T each, as the model's embeddings take them."""
        B, T = positions.shape
        if streams is None:
            dur = positions.new_zeros(B, T)
            f0 = positions.new_full((B, T), NONE)
        else:
            dur, f0 = streams[..., 0], streams[..., 1]
        if self.discrete_duration:
            dur_in, dur_pad = dur.clamp(0, self.max_duration), 0
        else:
            dur_in, dur_pad = dur.to(dtype), 0.0
        if self.discrete_f0:
            unvoiced, f0_none, f0_pad = self.f0_codes
            f0_in = torch.bucketize(f0.float(), self.edges)
            f0_in = torch.where(f0 == UNVOICED, unvoiced, torch.where(f0 == NONE, f0_none, f0_in))
        else:  # pGSLM's continuous F0: log ratio to the speaker mean; unvoiced and no unit 0, padding -5
            f0_in = torch.where((f0 == UNVOICED) | (f0 == NONE), 0.0, f0.float() / CENTS_PER_LOG).to(dtype)
            f0_none, f0_pad = 0.0, -5.0
        out = []
        for value, shift, pad, none, ignore in zip((dur_in, f0_in), self.shifts, (dur_pad, f0_pad), (0, f0_none),
                                                   self.ignore):
            if shift:  # token t's prosody enters at t + shift; a sentence's first positions get padding
                fill = torch.where(positions[:, :shift] < shift, pad, none).to(value.dtype)
                value = torch.cat([fill, value[:, :-shift]], 1)
            out.append(torch.zeros_like(value) if ignore else value)
        return out
