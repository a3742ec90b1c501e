"""Hugging Face `transformers` causal LMs as a backbone: TWIST (OPT 350M and 1.3B, LLaMA 7B) and the
OPT-shaped uLMs `sp-pretrain --arch opt` makes.

A checkpoint is a `save_pretrained` directory (`config.json` and the weights, safetensors preferred; a
`pytorch_model.bin` is read with `weights_only=True`); `--base` takes the directory or its `config.json`.

Units to tokens, as TWIST's release maps them (textlesslib's examples/twist: `generate(offset + units)`):
`config.json` holds `offset`, and unit u is token `offset + u`; the tokens below the offset are special.
`</s>` is `eos_token_id`, `<pad>` is `pad_token_id`, and the separator `<s>` is `bos_token_id` where it
differs from `eos_token_id`, else the lowest special token that is neither (OPT's config says
bos = eos = 2; TWIST's four specials are fairseq's `<s> <pad> </s> <unk>`, so `<s>` is 0). A config
without `offset`, or one that leaves no token for the separator, is refused in one line.

The forward pass walks the model's own modules (embeddings, positions, each layer's projections,
norms and feed-forward, the output head), as `fairseq_lm.py` does for fairseq, with
`F.scaled_dot_product_attention` over `prefix + past + present` keys and values and the boolean mask
PromptLM builds. Two walks exist: OPT (learned positions at offset 2, pre- or post-norm, the 350M's
input/output projections) and the LLaMA family (`llama`, `mistral`, `qwen2`: RMSNorm, RoPE from the
model's own rotary module at the given positions, grouped-query attention, the gated MLP module). Any
other `model_type` is refused when its config is read. Why a walk, not PEFT's prefix tuning or the
model's own forward with a cache: see docs/backbones.md ("Hugging Face causal LMs").

The weights' memory is estimated from `config.json` before anything loads; a model that does not fit
the CPU's available memory (fp32) or the GPU's free memory is refused in one line.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os

import torch
import torch.nn.functional as F

from ...io import BadInput
from . import Backbone, Shape, Vocabulary

CONFIG = "config.json"
FAMILIES = {"opt": "opt", "llama": "llama", "mistral": "llama", "qwen2": "llama"}  # model_type -> walk
# Positions kept free at the end of the LM's table: the input prompt's vectors come first (PromptLM
# runs them at positions 0..P-1), so the units may use max_position_embeddings - PROMPT_RESERVE.
PROMPT_RESERVE = 64
WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "*.bin.index.json")


# ------------------------------------------------------------ config, no weights
def model_dir(path: str) -> str:
    """The `save_pretrained` directory: `path` itself, or the directory of a `config.json` given."""
    if os.path.isdir(path):
        return path
    if os.path.basename(path) == CONFIG:
        return os.path.dirname(os.path.abspath(path))
    raise BadInput(f"refused: a Hugging Face LM is a save_pretrained directory (or its {CONFIG}), not a file "
                   f"(a fairseq checkpoint? use --backbone fairseq)", path)


def read_config(path: str) -> dict:
    """`config.json` of the model at `path`, as a dict; one line when it is missing or not JSON."""
    config_path = os.path.join(model_dir(path), CONFIG)
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        raise BadInput(f"no {CONFIG}: not a save_pretrained directory", model_dir(path)) from None
    except json.JSONDecodeError as error:
        raise BadInput(f"not JSON: {error.msg}", f"{config_path}:{error.lineno}") from None
    if not isinstance(config, dict):
        raise BadInput("not a model config (a JSON object)", config_path)
    family_of(config, config_path)
    return config


def family_of(config: dict, where: str) -> str:
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise BadInput(f"refused: model_type {model_type!r} is not walked by this backbone (supported: "
                       f"{', '.join(FAMILIES)}; docs/backbones.md says how to add one)", where)
    return FAMILIES[model_type]


def head_dim(config: dict) -> int:
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def read_shape(path: str) -> Shape:
    """From `config.json` alone."""
    c = read_config(path)
    heads = int(c["num_attention_heads"])
    return Shape(int(c["num_hidden_layers"]), int(c["hidden_size"]), heads, int(c.get("num_key_value_heads") or heads),
                 head_dim(c), int(c["vocab_size"]), int(c["max_position_embeddings"]) - PROMPT_RESERVE)


def vocabulary(path: str, dict_path: str | None = None) -> Vocabulary:
    """The units-to-tokens map of `config.json` (see the module's documentation), without the weights."""
    if dict_path:
        raise BadInput("a Hugging Face LM maps units to tokens by its config.json (TWIST's `offset`); "
                       "--base-dict does not apply", dict_path)
    return vocabulary_of(read_config(path), os.path.join(model_dir(path), CONFIG))


def vocabulary_of(config: dict, where: str) -> Vocabulary:
    size, offset = int(config["vocab_size"]), config.get("offset")
    if not isinstance(offset, int) or not 0 < offset < size:
        raise BadInput(f"refused: no units-to-tokens map: TWIST's release (and sp-pretrain --arch opt) puts "
                       f"`offset` in config.json, unit u being token offset + u (found offset {offset!r}, "
                       f"vocab_size {size})", where)
    specials = list(range(offset))
    eos = config.get("eos_token_id")
    if isinstance(eos, list):  # generation configs may list several; the first ends a sentence
        eos = eos[0] if eos else None
    if not isinstance(eos, int) or eos not in specials:
        raise BadInput(f"refused: eos_token_id {eos!r} is not one of the special tokens below the offset {offset}",
                       where)
    pad = config.get("pad_token_id")
    pad = pad if isinstance(pad, int) and pad in specials else eos
    bos = config.get("bos_token_id")
    free = [i for i in specials if i not in (eos, pad)]
    sep = bos if isinstance(bos, int) and bos in free else (free[0] if free else None)
    if sep is None:
        raise BadInput(f"refused: offset {offset} leaves no special token for the separator <s> besides </s> "
                       f"({eos}) and <pad> ({pad})", where)
    unk = next((i for i in free if i != sep), pad)
    symbols = [f"<special{i}>" for i in range(offset)] + [str(u) for u in range(size - offset)]
    for index, name in ((pad, "<pad>"), (unk, "<unk>"), (eos, "</s>"), (sep, "<s>")):
        symbols[index] = name
    return Vocabulary(symbols, sep, eos, pad, unk)


def units_of(vocab: Vocabulary) -> int:
    """How many unit tokens the vocabulary has (units 0..N-1)."""
    return sum(1 for s in vocab.symbols if s.isdigit())


# --------------------------------------------------------------- memory estimate
def parameter_count(config: dict) -> int:
    """The parameters of the model `config` describes (what `from_pretrained` will allocate)."""
    c, family = config, family_of(config, CONFIG)
    D, L, V = int(c["hidden_size"]), int(c["num_hidden_layers"]), int(c["vocab_size"])
    tied = c.get("tie_word_embeddings", True if family == "opt" else False)
    if family == "opt":
        E, F_, bias = int(c.get("word_embed_proj_dim") or D), int(c["ffn_dim"]), bool(c.get("enable_bias", True))
        affine = 2 if c.get("layer_norm_elementwise_affine", True) else 0
        norms_before = c.get("do_layer_norm_before", True) and not c.get("_remove_final_layer_norm", False)
        layer = 4 * D * D + 2 * D * F_ + bias * (4 * D + F_ + D) + 2 * affine * D
        count = V * E + (int(c["max_position_embeddings"]) + 2) * D + L * layer + affine * D * norms_before
        count += 2 * E * D if E != D else 0
        return count + (0 if tied else V * E)
    H, hd = int(c["num_attention_heads"]), head_dim(c)
    kv = int(c.get("num_key_value_heads") or H)
    F_ = int(c["intermediate_size"])
    if c.get("model_type") == "qwen2":  # biases on q, k, v, none on o
        attention_bias = H * hd + 2 * kv * hd
    else:
        attention_bias = bool(c.get("attention_bias", False)) * (H * hd + 2 * kv * hd + D)
    layer = 2 * D * H * hd + 2 * D * kv * hd + attention_bias + 3 * D * F_ + bool(c.get("mlp_bias")) * (2 * F_ + D)
    layer += 2 * D  # the two RMSNorms
    return V * D + L * layer + D + (0 if tied else V * D)


def available_bytes(device: torch.device) -> int:
    """Free memory where the weights would go: the GPU's free memory, or the CPU's MemAvailable."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(config: dict, device: torch.device, where: str) -> None:
    """Refuse, before loading, a model whose fp32 weights do not fit where they would go."""
    count = parameter_count(config)
    need, have = 4 * count, available_bytes(torch.device(device))
    if need > have:
        where_to = "GPU" if torch.device(device).type == "cuda" else "CPU"
        raise BadInput(f"refused: a {config.get('model_type')} LM of {count / 1e9:.2f} B parameters needs "
                       f"{need / 2**30:.1f} GiB for its fp32 weights (estimated from config.json), the {where_to} has "
                       f"{have / 2**30:.1f} GiB available: run it on a larger GPU (docs/backbones.md)", where)


# ------------------------------------------------------------------- loading
def identity(path: str) -> str:
    """sha256 over the model's config and weight files (name and content): what a prompt records."""
    root = model_dir(path)
    names = sorted({os.path.basename(p) for pattern in (CONFIG,) + WEIGHT_PATTERNS
                    for p in glob.glob(os.path.join(root, pattern))})
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0")
        with open(os.path.join(root, name), "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


def load(path: str, dict_path: str | None = None, device="cpu") -> HFLM:
    from ...checkpoints import refusing

    config = read_config(path)
    where = os.path.join(model_dir(path), CONFIG)
    vocab = vocabulary(path, dict_path)
    check_memory(config, torch.device(device), where)
    AutoModelForCausalLM = quiet_transformers(where).AutoModelForCausalLM
    root = model_dir(path)
    safetensors = bool(glob.glob(os.path.join(root, "*.safetensors")))
    with refusing(root):  # trust_remote_code off: no code from the checkpoint runs; pickles weights-only
        model = AutoModelForCausalLM.from_pretrained(root, local_files_only=True, trust_remote_code=False,
                                                     use_safetensors=safetensors, weights_only=True,
                                                     dtype=torch.float32)
    walk = OPTWalk if FAMILIES[config["model_type"]] == "opt" else LlamaWalk
    with refusing(root):
        return walk(model, vocab).to(device).freeze()


def quiet_transformers(where: str):
    """`transformers`, its progress bars and advice off (stderr is for the tools' own progress and errors)."""
    try:
        import transformers
    except ImportError:
        raise BadInput("the hf backbone needs the optional `transformers` (make setup installs it; pip install "
                       "'speechprompt[hf]')", where) from None
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


class HFLM(Backbone):
    """What the walks share: token embeddings, the output head, attention over prefix + past + present."""

    kind = "hf"

    def __init__(self, model, vocab: Vocabulary):
        super().__init__()
        self.model = model
        c = model.config
        self.vocab = vocab
        heads = c.num_attention_heads
        self.shape = Shape(c.num_hidden_layers, c.hidden_size, heads, getattr(c, "num_key_value_heads", None) or heads,
                           getattr(c, "head_dim", None) or c.hidden_size // heads, c.vocab_size,
                           c.max_position_embeddings - PROMPT_RESERVE)
        if model.get_output_embeddings().out_features != c.vocab_size:
            raise ValueError("the output head is not vocab_size wide")

    def embed_tokens(self, tokens):
        return self.model.get_input_embeddings()(tokens)

    def logits(self, hidden):
        return self.model.get_output_embeddings()(hidden)

    def _heads(self, x, n):  # B x T x (n * hd) -> B x n x T x hd
        return x.unflatten(-1, (n, self.shape.head_dim)).transpose(1, 2)

    def _attend(self, q, k, v, mask, prefix, past, dropout: float):
        """Attention of `q` over prefix, past and this call's keys and values; returns (B x T x H*hd, (k, v))."""
        kv = (k, v)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        if prefix is not None:
            k, v = torch.cat([prefix[0], k], 2), torch.cat([prefix[1], v], 2)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout if self.training else 0.0,
                                           enable_gqa=q.shape[1] != k.shape[1])
        return h.transpose(1, 2).flatten(2), kv


class OPTWalk(HFLM):
    """OPT's decoder (modeling_opt.OPTDecoder): learned positions, pre- or post-norm layers."""

    def __init__(self, model, vocab):
        super().__init__(model, vocab)
        self.decoder = model.model.decoder
        c = model.config
        self.pre_norm = bool(c.do_layer_norm_before)
        self.dropout, self.attention_dropout = float(c.dropout), float(c.attention_dropout)

    def layer_input(self, vectors, positions, streams=None):  # one stream: prosody is not read
        dec = self.decoder
        x = dec.project_in(vectors) if dec.project_in is not None else vectors
        table = dec.embed_positions
        return x + F.embedding(positions + table.offset, table.weight).to(x.dtype)

    def run(self, x, positions, mask, prefix=None, past=None, states=None):
        dec = self.decoder
        x, cache = self.walk(dec.layers, x, mask, prefix, past, states)
        if dec.final_layer_norm is not None:
            x = dec.final_layer_norm(x)
        if dec.project_out is not None:
            x = dec.project_out(x)
        return x, cache

    def _layer(self, layer, x, mask, prefix, past):
        attn, H = layer.self_attn, self.shape.heads
        residual = x
        h = layer.self_attn_layer_norm(x) if self.pre_norm else x
        q, k, v = (self._heads(proj(h), H) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
        h, kv = self._attend(q, k, v, mask, prefix, past, self.attention_dropout)
        x = residual + F.dropout(attn.out_proj(h), self.dropout, self.training)
        if not self.pre_norm:
            x = layer.self_attn_layer_norm(x)
        residual = x
        h = layer.final_layer_norm(x) if self.pre_norm else x
        h = layer.fc2(layer.activation_fn(layer.fc1(h)))
        x = residual + F.dropout(h, self.dropout, self.training)
        if not self.pre_norm:
            x = layer.final_layer_norm(x)
        return x, kv


class LlamaWalk(HFLM):
    """The LLaMA family's decoder (modeling_llama.LlamaModel and its copies): RMSNorm, RoPE, gated MLP."""

    def __init__(self, model, vocab):
        super().__init__(model, vocab)
        self.core = model.model
        self.attention_dropout = float(getattr(model.config, "attention_dropout", 0.0) or 0.0)

    def layer_input(self, vectors, positions, streams=None):  # one stream: prosody is not read
        return vectors  # no scaling, no position table: positions act inside the layers (RoPE)

    def run(self, x, positions, mask, prefix=None, past=None, states=None):
        cos, sin = self.core.rotary_emb(x, positions)  # B x T x hd each, the model's own rotary module
        rotary = (cos.unsqueeze(1), sin.unsqueeze(1))
        x, cache = self.walk(self.core.layers, x, mask, prefix, past, states, rotary=rotary)
        return self.core.norm(x), cache

    def _layer(self, layer, x, mask, prefix, past, rotary):
        attn, shape = layer.self_attn, self.shape
        h = layer.input_layernorm(x)
        q = _rotate(self._heads(attn.q_proj(h), shape.heads), *rotary)
        k = _rotate(self._heads(attn.k_proj(h), shape.kv_heads), *rotary)
        v = self._heads(attn.v_proj(h), shape.kv_heads)
        h, kv = self._attend(q, k, v, mask, prefix, past, self.attention_dropout)
        x = x + attn.o_proj(h)
        return x + layer.mlp(layer.post_attention_layernorm(x)), kv


def _rotate(x, cos, sin):
    """RoPE as transformers applies it (`apply_rotary_pos_emb`): x cos + rotate_half(x) sin."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin
