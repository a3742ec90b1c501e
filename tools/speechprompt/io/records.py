"""The shared table formats (manifest, units table, LM data, predictions): records and their parsers.

Every record carries `where` (`file:line`), so an error names the line it comes from."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import unicodedata
from typing import Callable, Iterator

from .errors import BadInput, Skipper, UniqueIds
from .files import lines

SEP = "<s>"  # separator between units and label in fairseq LM lines
# The symbols of every fairseq dictionary: a label slot spelled like one would be read as the symbol
# (`<unk>` never scores as correct, `<s>` splits the LM line), so such a label is refused where it enters.
SPECIAL_SYMBOLS = ("<s>", "<pad>", "</s>", "<unk>")


def normalize_label(label: str | None) -> str | None:
    """Labels are whitespace-separated slot values, in Unicode NFC (`café` typed or read from an NFD file
    system is one label); None means unlabelled."""
    if label is None:
        return None
    label = " ".join(unicodedata.normalize("NFC", label).split())
    return label or None


def check_label(label: str | None, where: str) -> str | None:
    """`label`, refused in one line if a slot is one of the uLM's special symbols."""
    clash = next((value for value in (label or "").split() if value in SPECIAL_SYMBOLS), None)
    if clash:
        raise BadInput(f"label {label!r}: {clash!r} is one of the uLM's special symbols "
                       f"({' '.join(SPECIAL_SYMBOLS)}); rename that label", where)
    return label


@dataclasses.dataclass
class Utterance:
    """One row of the manifest: `id  path  offset  num_samples  label  [speaker]` (the speaker where the
    dataset's adapter names one)."""

    id: str
    path: str
    offset: int
    num_samples: int
    label: str | None
    where: str = ""
    speaker: str | None = None

    def row(self) -> str:
        fields = [self.id, self.path, str(self.offset), str(self.num_samples), self.label or ""]
        return "\t".join(fields + ([self.speaker] if self.speaker else []))


UNVOICED = "u"  # the F0 column's value for a unit with no voiced frame


@dataclasses.dataclass
class Units:
    """One row of the units table: `id  units  label  [durations  [f0]]`.

    `durations`: each unit's run length in encoder frames (sp-dedup --durations). `f0`: each unit's
    log-F0 in cents relative to its speaker's mean (sp-f0), None (`u` in the table) where the unit
    has no voiced frame."""

    id: str
    units: list[str]
    label: str | None
    durations: list[int] | None = None
    where: str = ""
    f0: list[int | None] | None = None

    def row(self) -> str:
        fields = [self.id, " ".join(self.units), self.label or ""]
        if self.durations is not None:
            fields.append(" ".join(map(str, self.durations)))
            if self.f0 is not None:
                fields.append(f0_text(self.f0))
        return "\t".join(fields)


def f0_text(values) -> str:
    return " ".join(UNVOICED if v is None else str(v) for v in values)


def parse_f0(text: str, count: int, where: str) -> list[int | None]:
    """An F0 column: one integer (cents) or `u` a unit, `count` of them."""
    values = []
    for value in text.split():
        if value == UNVOICED:
            values.append(None)
            continue
        digits = value[1:] if value[:1] in "+-" else value
        if not is_number(digits):
            raise BadInput(f"F0 value {value!r} is neither whole cents nor {UNVOICED!r} (unvoiced)", where)
        values.append(int(value))
    if len(values) != count:
        raise BadInput(f"{len(values)} F0 values for {count} units (one a unit: cents, or {UNVOICED!r})", where)
    return values


@dataclasses.dataclass
class LMLine:
    """One row of LM data: `id  u1 u2 ... <s> l1 l2 ...  [durations  f0]` (the fairseq text after the first
    tab; the prosody columns, one value a unit, as in the units table)."""

    id: str
    units: list[str]
    label: list[str]
    where: str = ""
    durations: list[int] | None = None
    f0: list[int | None] | None = None

    def row(self) -> str:
        return f"{self.id}\t{self.text()}{prosody_columns(self.durations, self.f0)}"

    def text(self) -> str:
        return " ".join(self.units + [SEP] + self.label)


@dataclasses.dataclass
class Prediction:
    """One line of predictions JSONL (sp-sample, sp-baseline -> sp-score): a candidate label per id."""

    id: str
    units: str
    label: str | None  # the truth, None if unknown
    prediction: str
    score: float | None = None  # the prediction's probability
    scores: dict[str, float] | None = None  # a probability per candidate
    where: str = ""

    @classmethod
    def best(cls, uid: str, units: str, label: str | None, candidates: list[str], probs) -> Prediction:
        """The most probable candidate; `probs[i]` is the probability of `candidates[i]` (6 decimals kept)."""
        best = max(range(len(candidates)), key=lambda i: float(probs[i]))  # the first of equals, as argmax
        return cls(uid, units, label, str(candidates[best]), round(float(probs[best]), 6),
                   {str(c): round(float(p), 6) for c, p in zip(candidates, probs)})

    def row(self) -> str:
        return json.dumps({"id": self.id, "units": self.units, "label": self.label, "prediction": self.prediction,
                           "score": self.score, "scores": self.scores}, ensure_ascii=False)


def is_number(text: str) -> bool:
    """ASCII digits only: `str.isdigit` also accepts `²` and `٣`, which `int` then rejects or misreads."""
    return text.isascii() and text.isdigit()


def _check_units(units: list[str], where: str, what: str = "unit") -> list[str]:
    if units and not is_number("".join(units)):  # one C-level check; find the culprit only on failure
        bad = next(unit for unit in units if not is_number(unit))
        raise BadInput(f"{what} {bad!r} is not a non-negative integer", where)
    return units


def prosody_columns(durations, f0) -> str:
    """The optional prosody columns of a row, each after a tab: durations, then F0 (only with durations)."""
    if durations is None:
        return ""
    return "\t" + " ".join(map(str, durations)) + ("" if f0 is None else "\t" + f0_text(f0))


def parse_prosody(columns: list[str], count: int, where: str) -> tuple[list[int] | None, list[int | None] | None]:
    """(durations, f0) of `count` units from the optional columns `[durations [f0]]`."""
    durations = f0 = None
    if columns and columns[0].strip():
        durations = [int(d) for d in _check_units(columns[0].split(), where, "duration")]
        if len(durations) != count:
            raise BadInput(f"{len(durations)} durations for {count} units (a 4th column holds one run length per "
                           "unit)", where)
        if 0 in durations:
            raise BadInput("a duration of 0 (a run length is at least 1)", where)
    if len(columns) > 1 and columns[1].strip():
        if durations is None:
            raise BadInput("an F0 column without durations (F0 is averaged over each unit's frames)", where)
        f0 = parse_f0(columns[1], count, where)
    return durations, f0


def parse_manifest(text: str, where: str) -> Utterance:
    fields = text.split("\t")
    if len(fields) not in (5, 6):
        raise BadInput(f"expected 5 tab-separated columns (id path offset num_samples label [speaker]), "
                       f"got {len(fields)}", where)
    uid, audio, offset, num_samples, label = fields[:5]
    if not (is_number(offset) and is_number(num_samples)):
        raise BadInput("offset and num_samples must be non-negative integers", where)
    speaker = fields[5].strip() if len(fields) == 6 else ""
    return Utterance(uid, audio, int(offset), int(num_samples), check_label(normalize_label(label), where), where,
                     speaker or None)


def parse_units(text: str, where: str) -> Units:
    """A units-table row, either TSV or GSLM's `name|units[|label]`."""
    if "\t" in text:
        fields = text.split("\t")
        if not 2 <= len(fields) <= 5:
            raise BadInput(f"expected 2 to 5 tab-separated columns (id units [label [durations [f0]]]), "
                           f"got {len(fields)}", where)
    else:
        fields = text.split("|")
        if not 2 <= len(fields) <= 3:
            raise BadInput(f"expected GSLM 'name|units[|label]', got {len(fields)} '|'-separated fields", where)
    fields += [""] * (5 - len(fields))
    uid, units, label = fields[:3]
    if not uid:
        raise BadInput("empty id", where)
    record = Units(uid, _check_units(units.split(), where), check_label(normalize_label(label), where), None, where)
    record.durations, record.f0 = parse_prosody(fields[3:], len(record.units), where)
    return record


def parse_lm(text: str, where: str) -> LMLine:
    uid, *columns = text.split("\t")
    if not columns or len(columns) > 3:
        raise BadInput(f"expected 'id<TAB>units {SEP} label[<TAB>durations<TAB>f0]'", where)
    tokens = columns[0].split()
    if tokens.count(SEP) != 1:
        raise BadInput(f"expected exactly one {SEP} separator, found {tokens.count(SEP)}", where)
    cut = tokens.index(SEP)
    label = tokens[cut + 1:]
    check_label(" ".join(label), where)
    line = LMLine(uid, _check_units(tokens[:cut], where), label, where)
    line.durations, line.f0 = parse_prosody(columns[1:], cut, where)
    return line


def parse_prediction(text: str, where: str) -> Prediction:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInput(f"not JSON: {error.msg}", where) from None
    if not isinstance(record, dict) or not isinstance(record.get("id"), str) or "prediction" not in record:
        raise BadInput("expected a JSON object with 'id' and 'prediction'", where)
    for key in ("prediction", "label"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise BadInput(f"'{key}' must be a string or null, not {type(record[key]).__name__} "
                           f"{json.dumps(record[key])[:40]}", where)
    scores = record.get("scores")
    if scores is not None and not (isinstance(scores, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in scores.values())):
        raise BadInput("'scores' must map labels to finite numbers (NaN or infinity found, or not numbers)", where)
    prediction = record["prediction"]
    return Prediction(record["id"], record.get("units", ""), normalize_label(record.get("label")),
                      unicodedata.normalize("NFC", prediction) if prediction else prediction,
                      record.get("score"), record.get("scores"), where)


def read_records(path: str, parse: Callable[[str, str], object], skipper: Skipper | None = None) -> Iterator:
    """Parse each line of `path`; ids must be unique. With a skipper, bad lines are skipped."""
    ids = UniqueIds()
    guard = skipper.guard if skipper else contextlib.nullcontext
    for where, text in lines(path):
        good = None
        with guard():
            record = parse(text, where)
            ids.check(record.id, where)
            good = record
        if good is not None:
            yield good


def read_manifest(path: str, skipper: Skipper | None = None) -> Iterator[Utterance]:
    return read_records(path, parse_manifest, skipper)


def read_units(path: str, skipper: Skipper | None = None) -> Iterator[Units]:
    return read_records(path, parse_units, skipper)


def read_lm(path: str, skipper: Skipper | None = None) -> Iterator[LMLine]:
    return read_records(path, parse_lm, skipper)


def read_predictions(path: str, skipper: Skipper | None = None) -> Iterator[Prediction]:
    return read_records(path, parse_prediction, skipper)
