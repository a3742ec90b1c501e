"""The one shared I/O and error layer of the sp-* tools, one concern a module:

- `errors`: `BadInput` (one line `sp-x: error: file:line: message`, exit 1), `UsageProblem`,
  `log` to stderr, `Skipper`, which turns bad records into counted, reported skips under
  `--skip-bad`, and `writing`, which turns a full or read-only disk into one line naming the output;
- `files`: `open_input` / `atomic_output`: a path or `-` for stdin/stdout (a `.gz` input read
  through gzip); a regular file output is written to a temporary file and renamed into place only
  when the tool succeeds, so `make` never sees a partial output as done; `check_output` refuses,
  before any work, an output that cannot be written (a directory, a read-only file system);
  `file_hash`, a file's sha256;
- `records`: the shared formats (manifest, units table, LM data, predictions), parsed with the file
  name and line number of every record for error messages;
- `device`: `--device`, `--threads` and `--precision` as one meaning in every tool;
- `cli`: `command`, the click decorator every tool's `main` is built with, and the shared options.

The tools import from `speechprompt.io`; the names below are its public surface.
"""
from .cli import Group, command, input_argument, output_dir_option, output_option, output_path_option, skip_bad_option
from .device import DEVICE_PATTERN, pick_device, runtime_options
from .errors import BadInput, Skipper, UniqueIds, UsageProblem, log, one_line, usage_errors, writing
from .files import (atomic_output, atomic_path, check_output, check_output_dir, file_hash, input_name, lines,
                    open_input, output_callback, output_dir_callback)
from .records import (SEP, SPECIAL_SYMBOLS, LMLine, Prediction, Units, Utterance, check_label, is_number,
                      normalize_label, parse_lm, parse_manifest, parse_prediction, parse_units, read_lm,
                      read_manifest, read_predictions, read_records, read_units)

__all__ = ["Group", "command", "input_argument", "output_dir_option", "output_option", "output_path_option",
           "runtime_options", "skip_bad_option", "DEVICE_PATTERN", "pick_device", "BadInput", "Skipper", "UniqueIds",
           "UsageProblem", "log", "one_line", "usage_errors", "writing", "atomic_output", "atomic_path",
           "check_output", "check_output_dir", "file_hash", "input_name", "lines", "open_input", "output_callback",
           "output_dir_callback", "SEP", "SPECIAL_SYMBOLS", "check_label", "LMLine", "Prediction", "Units",
           "Utterance", "is_number", "normalize_label", "parse_lm", "parse_manifest", "parse_prediction",
           "parse_units", "read_lm", "read_manifest", "read_predictions", "read_records", "read_units"]
