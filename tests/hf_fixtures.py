"""Tiny random Hugging Face causal LMs (OPT, LLaMA) for the hf backbone's tests, saved with save_pretrained.

Skips the calling test, with its reason, where `transformers` is not installed (it is an optional extra).
"""
from __future__ import annotations

import os

import pytest
import torch

OFFSET = 4  # TWIST's layout: four special tokens, then unit u at token 4 + u


def transformers_or_skip():
    return pytest.importorskip("transformers", reason="the hf backbone needs the optional `transformers`")


def build_hf_lm(family="opt", units=20, layers=2, dim=32, heads=4, kv_heads=None, ffn=64, pre_norm=True,
                proj_dim=None, positions=192, seed=0, offset=OFFSET, std=0.3, **extra):
    """A randomly initialised OPT or LLaMA causal LM whose config maps unit u to token offset + u.

    `std`: the initialisation's spread; transformers' 0.02 leaves a tiny random LM's token embeddings
    no larger than its position embeddings, and prompts then have little to steer."""
    transformers = transformers_or_skip()
    vocab = offset + units
    if family == "opt":
        config = transformers.OPTConfig(vocab_size=vocab, hidden_size=dim, num_hidden_layers=layers, ffn_dim=ffn,
                                        num_attention_heads=heads, max_position_embeddings=positions,
                                        word_embed_proj_dim=proj_dim or dim, do_layer_norm_before=pre_norm,
                                        dropout=0.1, init_std=std, offset=offset, **extra)
        cls = transformers.OPTForCausalLM
    else:  # the LLaMA family: llama, mistral, qwen2
        classes = {"llama": "Llama", "mistral": "Mistral", "qwen2": "Qwen2"}
        extra = {"bos_token_id": 1, "eos_token_id": 2, **extra}  # Qwen2's config names none
        config = getattr(transformers, classes[family] + "Config")(vocab_size=vocab, hidden_size=dim, num_hidden_layers=layers,
                                          intermediate_size=ffn, num_attention_heads=heads,
                                          num_key_value_heads=kv_heads or heads, max_position_embeddings=positions,
                                          initializer_range=std, offset=offset, **extra)
        cls = getattr(transformers, classes[family] + "ForCausalLM")
    torch.manual_seed(seed)
    model = cls(config)
    with torch.no_grad():  # biases and norms start at 0 and 1: random ones make the equivalence tests stricter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def make_hf_lm(directory, family="opt", **kwargs) -> str:
    """`build_hf_lm` saved with save_pretrained (safetensors) into `directory`; returns the directory."""
    model = build_hf_lm(family, **kwargs)
    os.makedirs(directory, exist_ok=True)
    model.save_pretrained(directory)
    return str(directory)
