"""The fairseq plug points for prompt tuning: task `speech_prompt`, model `prompt_lm`, criterion `label_ce`.

Use through `sp-train`, or directly:
`fairseq-train DIR --user-dir tools/speechprompt/prompting --task speech_prompt --base LM.pt
 --arch prompt_lm --criterion label_ce --optimizer adam --lr 5e-3`.

Each sentence of the data-bin is `u1 .. un <s> l1 .. lk </s>`. The model reads
`</s> u1 .. un <s> l1 .. lk` (a fairseq LM sees `</s>` first, as in pretraining)
and the loss covers only the targets `l1 .. lk </s>`, predicted at `<s>` and
after it. With the linear verbalizer, the target is the label's class, predicted
at `<s>` only: class i is the i-th of the train split's distinct labels in sorted
order (`train_labels`; sp-train stores that list as the decoding candidates), so
a label of any number of tokens, such as a spelled one, is one class.
"""

import dataclasses
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.data import Dictionary, FairseqDataset, data_utils
from fairseq.dataclass import FairseqDataclass
from fairseq.models import BaseFairseqModel, register_model
from fairseq.tasks import FairseqTask, register_task

from speechprompt.checkpoints import lm_positions, load_lm
from speechprompt.io import log
from speechprompt.prompting.model import PromptConfig, PromptLM


def lm_dict_path(base: str, base_dict: str | None) -> str:
    return base_dict or os.path.join(os.path.dirname(os.path.abspath(base)), "dict.txt")


def split_at_separator(seq: torch.Tensor, dictionary: Dictionary):
    """`u1 .. un <s> l1 .. lk [</s>]` -> (units, label) tensors; None unless there is exactly one `<s>`."""
    where = (seq == dictionary.bos()).nonzero()
    if len(where) != 1:
        return None
    cut = int(where[0, 0])
    end = len(seq) - int(len(seq) > cut + 1 and seq[-1] == dictionary.eos())
    return seq[:cut], seq[cut + 1:end]


def read_split(data: str, split: str, lm_dict: Dictionary):
    """Sentences of `DIR/split` as LM-dictionary indices, with the ids of `DIR/split.id`."""
    data_dict = Dictionary.load(os.path.join(data, "dict.txt"))
    dataset = data_utils.load_indexed_dataset(os.path.join(data, split), data_dict)
    if dataset is None:
        raise FileNotFoundError(f"{os.path.join(data, split)}.bin/.idx not found")
    remap = torch.tensor([lm_dict.index(s) for s in data_dict.symbols])
    id_path = os.path.join(data, f"{split}.id")
    ids = open(id_path, encoding="utf-8").read().split("\n")[:len(dataset)] if os.path.exists(id_path) else []
    if ids and len(ids) != len(dataset):
        raise ValueError(f"{id_path}: {len(ids)} ids for {len(dataset)} sentences")
    return [remap[dataset[i].long()] for i in range(len(dataset))], ids or [str(i) for i in range(len(dataset))]


def label_of(seq: torch.Tensor, dictionary: Dictionary) -> str | None:
    """The label tokens after the one `<s>` of `units <s> label </s>`, as text; None if there is no such label."""
    parts = split_at_separator(seq, dictionary)
    return dictionary.string(parts[1]) if parts is not None and len(parts[1]) else None


def train_labels(sentences, dictionary: Dictionary) -> list[str]:
    """The distinct labels of the train sentences, sorted: the decoding candidates and the linear verbalizer's
    classes."""
    return sorted({label for label in (label_of(seq, dictionary) for seq in sentences) if label})


class CandidateSteps:
    """The tokens that may come next after each prefix of a candidate label: decoding (sp-sample) chooses
    among the train split's distinct labels, so a label token is judged among those, not the whole vocabulary.
    `</s>` may come where a candidate ends."""

    def __init__(self, labels, eos: int, vocab: int):
        following: dict[tuple, set] = {}
        for label in labels:
            steps = (*label, eos)
            for depth in range(len(steps)):
                following.setdefault(steps[:depth], set()).add(steps[depth])
        self.node = {prefix: i for i, prefix in enumerate(following)}
        self.table = torch.zeros(len(following) + 1, vocab, dtype=torch.bool)  # the last row: a prefix of none
        for prefix, tokens in following.items():
            self.table[self.node[prefix], sorted(tokens)] = True

    def allowed(self, gold_rows: list[list[int]], device) -> torch.Tensor:
        """One row per label position of `gold_rows` (each sentence's label tokens and `</s>`, in order):
        the tokens a candidate may have there after the gold prefix; none after a prefix of no candidate."""
        if self.table.device != torch.device(device):
            self.table = self.table.to(device)
        none = len(self.node)
        nodes = [self.node.get(tuple(row[:depth]), none) for row in gold_rows for depth in range(len(row))]
        return self.table[torch.tensor(nodes, dtype=torch.long, device=device)]


class LabelDataset(FairseqDataset):
    """Items (input, target, class): input `</s> units <s> labels`, target padded except the label positions;
    with `classes` (label text -> index), the label's class (-100 for a label of no class)."""

    def __init__(self, sentences, dictionary: Dictionary, skip_bad: bool = False, name: str = "",
                 classes: dict | None = None):
        self.dict = dictionary
        self.items, self.skipped = [], 0
        for i, seq in enumerate(sentences):
            parts = split_at_separator(seq, dictionary)
            if parts is None or not len(parts[1]):
                if not skip_bad:
                    raise ValueError(f"{name} sentence {i + 1}: expected 'units <s> label'")
                self.skipped += 1
                continue
            source = torch.cat([seq.new_tensor([dictionary.eos()]), seq[:-1]])
            target = seq.clone()
            units, label = parts
            target[:len(units) + 1] = dictionary.pad()
            label_class = classes.get(dictionary.string(label), -100) if classes else -100
            self.items.append((source, target, label_class))
        self.sizes = np.array([len(s) for s, _, _ in self.items])

    def __getitem__(self, index):
        source, target, label_class = self.items[index]
        return {"id": index, "source": source, "target": target, "label_class": label_class}

    def __len__(self):
        return len(self.items)

    def collater(self, samples):
        if not samples:
            return {}
        pad = self.dict.pad()
        target = data_utils.collate_tokens([s["target"] for s in samples], pad)
        return {"id": torch.tensor([s["id"] for s in samples]), "nsentences": len(samples),
                "ntokens": int(target.ne(pad).sum()),
                "net_input": {"tokens": data_utils.collate_tokens([s["source"] for s in samples], pad)},
                "target": target, "label_class": torch.tensor([s["label_class"] for s in samples])}

    def num_tokens(self, index):
        return int(self.sizes[index])

    def size(self, index):
        return int(self.sizes[index])

    def ordered_indices(self):
        return np.argsort(self.sizes, kind="mergesort")


@dataclasses.dataclass
class SpeechPromptConfig(FairseqDataclass):
    data: str = dataclasses.field(default="", metadata={"help": "data-bin directory (dict.txt, SPLIT.bin/.idx/.id)"})
    base: str = dataclasses.field(default="", metadata={"help": "the frozen unit LM checkpoint"})
    base_dict: str = dataclasses.field(default="", metadata={"help": "its dict.txt (default: beside the checkpoint)"})
    skip_bad: bool = dataclasses.field(default=False, metadata={"help": "skip sentences without 'units <s> label'"})
    # PromptConfig's fields as fairseq flags. fairseq's argparse can only switch a bool flag
    # on, so a field on by default is `no_<field>` here; `prompt_config` and `prompt_flags` translate.
    prompt_length: int = dataclasses.field(default=5, metadata={"help": "prompt vectors per prompt"})
    no_deep: bool = dataclasses.field(default=False, metadata={"help": "no deep (per-layer key/value) prompts"})
    no_input_prompt: bool = dataclasses.field(default=False, metadata={"help": "no input prefix prompt"})
    no_separator: bool = dataclasses.field(default=False, metadata={"help": "keep the base's <s> embedding"})
    num_classes: int = dataclasses.field(default=0, metadata={"help": "> 0: linear verbalizer onto this many classes "
                                                                      "(the sorted distinct train labels first)"})
    finetune: bool = dataclasses.field(default=False, metadata={"help": "train the base LM too (full fine-tuning)"})


def prompt_config(cfg) -> PromptConfig:
    """The PromptConfig of a SpeechPromptConfig (or of the omegaconf view fairseq hands the task)."""
    return PromptConfig(**{f.name: not getattr(cfg, f"no_{f.name}") if f.default is True else getattr(cfg, f.name)
                           for f in dataclasses.fields(PromptConfig)})


def prompt_flags(config: PromptConfig) -> list[str]:
    """The fairseq command-line flags of `config` (SpeechPromptConfig's spelling)."""
    flags = []
    for f in dataclasses.fields(PromptConfig):
        value, name = getattr(config, f.name), f.name.replace("_", "-")
        if isinstance(f.default, bool):
            flags += [f"--no-{name}"] if f.default and not value else [f"--{name}"] if value and not f.default else []
        else:
            flags += [f"--{name}", str(value)]
    return flags


@register_task("speech_prompt", dataclass=SpeechPromptConfig)
class SpeechPromptTask(FairseqTask):
    def __init__(self, cfg, dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary
        self.train_split = read_split(cfg.data, "train", dictionary)  # the labels now; the dataset once, later
        labels = train_labels(self.train_split[0], dictionary)
        self.classes = {label: i for i, label in enumerate(labels)} if cfg.num_classes else None
        self.candidates = CandidateSteps([tuple(dictionary.index(t) for t in label.split()) for label in labels],
                                         dictionary.eos(), len(dictionary))

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        return cls(cfg, Dictionary.load(lm_dict_path(cfg.base, cfg.base_dict or None)))

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        if split == "train" and self.train_split is not None:
            (sentences, _ids), self.train_split = self.train_split, None  # not held beside the dataset's copy
        else:
            sentences, _ids = read_split(self.cfg.data, split, self.dictionary)
        self.datasets[split] = LabelDataset(sentences, self.dictionary, self.cfg.skip_bad, split, self.classes)
        if self.cfg.skip_bad:
            log(f"{split}: skipped {self.datasets[split].skipped} bad sentences (no 'units <s> label')")

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary

    def max_positions(self):  # fairseq refuses longer sentences (skips them with --skip-invalid-size-inputs-valid-test)
        if not hasattr(self, "_positions"):
            self._positions = lm_positions(self.cfg.base)
        return self._positions


def build_prompt_lm(base_path: str, base_dict: str | None, config: PromptConfig, device="cpu") -> PromptLM:
    """The frozen base from its checkpoint, and fresh prompts (seeded by the caller)."""
    base, dictionary = load_lm(base_path, lm_dict_path(base_path, base_dict or None), device)
    return PromptLM(base, config, sep_index=dictionary.bos()).to(device)


@dataclasses.dataclass
class PromptModelConfig(FairseqDataclass):
    pass


@register_model("prompt_lm", dataclass=PromptModelConfig)
class PromptModel(BaseFairseqModel):
    """fairseq's view of PromptLM; its state dict is only the trainable tensors."""

    def __init__(self, prompt: PromptLM):
        super().__init__()
        self.prompt = prompt
        print(f"trainable parameters: {prompt.trainable_count():,}", file=sys.stderr, flush=True)

    @classmethod
    def build_model(cls, cfg, task):
        return cls(build_prompt_lm(task.cfg.base, task.cfg.base_dict, prompt_config(task.cfg)))

    def forward(self, tokens, target_mask):
        return self.prompt(tokens, target_mask)

    def state_dict(self, *args, **kwargs):
        return self.prompt.prompt_state()

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        return self.prompt.load_state_dict(state_dict, strict=False)

    def max_positions(self):
        return self.prompt.base.max_positions()


@register_criterion("label_ce", dataclass=FairseqDataclass)
class LabelCrossEntropy(FairseqCriterion):
    """Cross-entropy on the label tokens (and end of sequence) only, or with the linear verbalizer on the
    label's class at `<s>`. Accuracy: the whole label right, each token the likeliest of those a train label
    may have there (`CandidateSteps`), as decoding chooses; the same as sp-sample's choice for labels of one
    token, and for longer ones a token at a time where sp-sample sums over the label."""

    def forward(self, model, sample, reduce=True):
        target = sample["target"]
        mask = target.ne(self.padding_idx)
        prompt = model.prompt if hasattr(model, "prompt") else model
        if prompt.verbalizer is not None:
            mask = mask & mask.cumsum(1).eq(1)  # the first label position: the one at <s>
            gold = sample["label_class"]
        else:
            gold = target[mask]
        logits = model(sample["net_input"]["tokens"], mask).float()
        loss = F.cross_entropy(logits, gold, ignore_index=-100, reduction="sum")
        counted = gold.ne(-100)
        choices = logits
        candidates = getattr(self.task, "candidates", None)  # None: a criterion used outside the task
        if prompt.verbalizer is None and candidates is not None:
            # two copies to the host, not one a sentence (each would wait for the GPU)
            rows = [[token for token, kept in zip(row, row_mask) if kept]
                    for row, row_mask in zip(target.tolist(), mask.tolist())]
            choices = logits.masked_fill(~candidates.allowed(rows, logits.device), float("-inf"))
        wrong = torch.zeros(target.shape[0], device=target.device)
        wrong.index_add_(0, mask.nonzero()[:, 0], (choices.argmax(-1).ne(gold) | ~counted).float())
        n = int(counted.sum())
        log = {"loss": loss.data, "ntokens": n, "nsentences": target.shape[0], "sample_size": n,
               "correct": int(wrong.eq(0).sum())}
        return loss, n, log

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        total = lambda key: sum(log.get(key, 0) for log in logging_outputs)
        n, sentences = max(total("sample_size"), 1), max(total("nsentences"), 1)
        metrics.log_scalar("loss", total("loss") / n / math.log(2), n, round=4)
        metrics.log_scalar("accuracy", total("correct") / sentences, sentences, round=4)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
