#!/usr/bin/env bash
# The GPU check (issue 14): on a machine with a CUDA GPU, in under 8 minutes, one summary line per item:
#   env       python, torch and the GPU's name; fairseq and the tools import
#   tests     the tests marked `cuda` (tests/test_cuda.py): every tool on --device cuda/cuda:0, bf16/fp16
#   bench     the pretraining benchmark (tests/bench_pretrain.py) on the GPU: GSLM's size, fp32 and bf16
#   loop      sp-train's loop at GSLM's shape, batch 32, bf16 (tests/bench_gpu_loop.py): updates/s eager and with
#             CUDA graphs beside the bare forward+backward, and a Speech Commands-sized epoch
#   prompt    real units (GSC, HuBERT-100): a GSLM-sized uLM (12 x 1024) pretrained briefly in bf16,
#             prompt tuning in bf16, decoding, test accuracy and wall times
# Without a GPU the GPU items print `skipped: no CUDA`; the rest still runs.
#
#   bash tests/gpu_check.sh            # or: make gpu-check
#
# Environment:
#   GPU_UNITS        GSLM units (train.txt, valid.txt, test.txt, or .txt.gz)  [tasks/units/gsc-hubert100]
#   WHEELS           wheels to install first into $SITE (a machine without the project's venv) [.whl, without .venv/]
#   SITE             where they go                                 [/tmp/site]
#   PYTHON           the interpreter                               [.venv/bin/python, else python3]
#   PRETRAIN_UPDATES uLM updates                                   [300]
#   TRAIN_UPDATES    prompt-tuning updates                         [1500]
#   CHECK_SECONDS    the whole check's budget; each item gets the smaller of its own limit and what is left [450]
#   ULM_SIZE         the uLM's size (sp-pretrain --size)            [big: 12 x 1024, GSLM's]
#   CHECK_ON_CPU=1   without a GPU, still run the prompt item, on the CPU in fp32 (a dry run of the chain;
#                    use with ULM_SIZE=tiny and few updates)
#   OUT              when set, the logs are packed into $OUT/gpu-check-logs.tgz
#   CHECK_ITEMS      the items to run after env                   [tests bench loop prompt]
#   CHECK_TESTS      a pytest -k expression for the tests item    [all of tests/test_cuda.py]
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$SECONDS
BUDGET=${CHECK_SECONDS:-450}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
LOGS=$WORK/logs
mkdir -p "$LOGS" "$WORK/bin"
WHEELS=${WHEELS-$( [ -d .whl ] && [ ! -x .venv/bin/python ] && echo .whl )}
SITE=${SITE:-/tmp/site}

say() { printf 'gpu-check: %s\n' "$*"; }
left() { echo $(( BUDGET - (SECONDS - START) )); }
# limit SECONDS: the item's own limit, or what is left of the budget if that is less (at least 5 s)
limit() { local l; l=$(left); (( l > $1 )) && l=$1; (( l < 5 )) && l=5; echo "$l"; }
finish() {
    # one archive: a lent machine hands back only a few files from $OUT
    if [ -n "${OUT:-}" ]; then tar -czf "$OUT/gpu-check-logs.tgz" -C "$LOGS" .; fi
    say "total: $(( SECONDS - START )) s (logs: ${OUT:+$OUT/gpu-check-logs.tgz, }$LOGS)"
}
trap finish EXIT

# ------------------------------------------------------------ the stack
if [ -n "$WHEELS" ]; then
    t=$SECONDS
    py=${PYTHON:-python3}
    if "$py" -m pip --version > /dev/null 2>&1; then
        install=("$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE")
    else  # no pip: a wheel is a zip of the files that go into site-packages
        install=("$py" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' "$SITE")
    fi
    if timeout "$(limit 90)" "${install[@]}" "$WHEELS"/*.whl > "$LOGS/install.log" 2>&1; then
        say "install: ok, $(ls "$WHEELS"/*.whl | wc -l) wheels into $SITE ($(( SECONDS - t )) s)"
    else
        say "install: FAIL (see $LOGS/install.log: $(tail -1 "$LOGS/install.log"))"
    fi
    export PYTHONPATH=$SITE:$ROOT/tools${PYTHONPATH:+:$PYTHONPATH}
    # The stack pins numpy 1.26.4; a machine whose scipy or scikit-learn need numpy 2 keeps its own
    # (the fairseq wheel's extensions load with either).
    if [ -d "$SITE/numpy" ] && ! "$py" -c 'import scipy.signal, sklearn.svm' > "$LOGS/numpy.log" 2>&1; then
        rm -rf "$SITE"/numpy "$SITE"/numpy-*.dist-info "$SITE"/numpy.libs
        # fairseq 0.12 reads numpy.compat.long (numpy 1.x; it was `int`), which numpy 2 removed; its other
        # numpy uses and its compiled extensions work with numpy 2 (checked with numpy 2.2 on the CPU).
        printf '%s\n' 'import types, numpy' \
            'if not hasattr(numpy, "compat"):' '    numpy.compat = types.SimpleNamespace(long=int)' > "$SITE/sitecustomize.py"
        say "install: the carried numpy does not suit this machine's scipy/scikit-learn ($(tail -1 "$LOGS/numpy.log")): using its own, with numpy.compat.long for fairseq"
    fi
fi
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && [ -z "$WHEELS" ] && echo "$ROOT/.venv/bin/python" || command -v python3 )}
# Launchers for the sp-* commands (those of tools/pyproject.toml), pytest and torchrun on this interpreter:
# the tools run from the source tree without `pip install -e`.
sed -n 's/^\(sp-[a-z-]*\) = "\(speechprompt\.[a-z_]*\):main"/\1 \2/p' tools/pyproject.toml |
while read -r name module; do
    printf '#!/bin/sh\nexec "%s" -c '"'"'import sys; sys.argv[0] = "%s"; from %s import main; main()'"'"' "$@"\n' \
        "$PYTHON" "$name" "$module" > "$WORK/bin/$name"
done
printf '#!/bin/sh\nexec "%s" "$@"\n' "$PYTHON" > "$WORK/bin/python"
printf '#!/bin/sh\nexec "%s" -m pytest "$@"\n' "$PYTHON" > "$WORK/bin/pytest"
printf '#!/bin/sh\nexec "%s" -m torch.distributed.run "$@"\n' "$PYTHON" > "$WORK/bin/torchrun"
chmod +x "$WORK"/bin/*
export PATH=$WORK/bin:$PATH SP_BIN=$WORK/bin
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

# ------------------------------------------------------------ env
t=$SECONDS
if info=$(timeout "$(limit 60)" "$PYTHON" -c '
import sys, numpy, torch, fairseq, speechprompt.pretrain, speechprompt.train, speechprompt.sample
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA"
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, numpy {numpy.__version__}, "
      f"fairseq {fairseq.__version__}, GPU: {gpu}")' 2> "$LOGS/env.log"); then
    say "env: ok, $info ($(( SECONDS - t )) s)"
else
    say "env: FAIL (see $LOGS/env.log: $(tail -1 "$LOGS/env.log"))"
    exit 1
fi
CUDA=$("$PYTHON" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)
DEVICE=cuda PRECISION=bf16
if [ "$CUDA" != 1 ] && [ -n "${CHECK_ON_CPU:-}" ]; then DEVICE=cpu PRECISION=fp32; fi

ITEMS=" ${CHECK_ITEMS:-tests bench loop prompt} "
item() { [[ "$ITEMS" == *" $1 "* ]]; }

# ------------------------------------------------------------ tests marked cuda
t=$SECONDS
if ! item tests; then
    :
elif [ "$CUDA" = 1 ]; then
    timeout "$(limit 240)" "$PYTHON" -m pytest -v -rfE --durations=5 -o faulthandler_timeout=200 -p no:cacheprovider -m cuda \
        ${CHECK_TESTS:+-k "$CHECK_TESTS"} tests/test_cuda.py > "$LOGS/tests.log" 2>&1
    rc=$?
    say "tests: $([ $rc = 0 ] && echo ok || echo "FAIL (rc $rc)"), $(grep -E '[0-9]+ (passed|failed|error|skipped)' "$LOGS/tests.log" | tail -1) ($(( SECONDS - t )) s)"
else
    say "tests: skipped: no CUDA"
fi

# ------------------------------------------------------------ benchmarks
t=$SECONDS
if ! item bench; then
    :
elif [ "$CUDA" = 1 ]; then
    # the benchmark that takes a device; the others measure CPU code (make bench NO_VENV=1 runs them all)
    BENCH_DEVICE=cuda timeout "$(limit 60)" "$PYTHON" tests/bench_pretrain.py --steps 4 > "$LOGS/bench.log" 2>&1
    rc=$?
    say "bench: $([ $rc = 0 ] && echo ok || echo "FAIL (rc $rc)"): $(grep 'tokens/s per train step' "$LOGS/bench.log" | sed 's/.*(\(.*\)): \([0-9]* tokens\/s\).*/\1: \2/' | paste -sd';' -) ($(( SECONDS - t )) s)"
else
    say "bench: skipped: no CUDA"
fi

# ------------------------------------------------------------ sp-train's loop at GSLM's shape
t=$SECONDS
if ! item loop; then
    :
elif [ "$CUDA" = 1 ]; then
    timeout "$(limit 200)" "$PYTHON" tests/bench_gpu_loop.py > "$LOGS/loop.log" 2>&1
    rc=$?
    say "loop: $([ $rc = 0 ] && echo ok || echo "FAIL (rc $rc)"): $(grep -E '^(bare|eager|graphs|epoch):' "$LOGS/loop.log" | sed 's/ (.*//' | paste -sd';' -) ($(( SECONDS - t )) s)"
else
    say "loop: skipped: no CUDA"
fi

# ------------------------------------------------------------ prompt tuning on real units
UNITS_DIR=${GPU_UNITS:-tasks/units/gsc-hubert100}
if ! item prompt; then
    :
elif [ "$CUDA" != 1 ] && [ "$DEVICE" != cpu ]; then
    say "prompt: skipped: no CUDA"
elif [ ! -f "$UNITS_DIR/train.txt" ] && [ ! -f "$UNITS_DIR/train.txt.gz" ]; then
    say "prompt: skipped: no units at $UNITS_DIR (set GPU_UNITS)"
else
    E=$WORK/prompt
    mkdir -p "$E"
    step() {  # step NAME SECONDS COMMAND...: run bounded, log to $LOGS/prompt-NAME.log, time it
        local name=$1 seconds=$2 s=$SECONDS
        shift 2
        if timeout "$(limit "$seconds")" bash -c "$*" > "$LOGS/prompt-$name.log" 2>&1; then
            eval "T_$name=$(( SECONDS - s ))"
            return 0
        fi
        say "prompt: FAIL at $name after $(( SECONDS - s )) s: $(grep -v '^\s*$' "$LOGS/prompt-$name.log" | tail -1)"
        return 1
    }
    U=$(cd "$UNITS_DIR" && pwd) P=${PRETRAIN_UPDATES:-300} N=${TRAIN_UPDATES:-1500}
    step data 60 "set -e; cd $E; seq 0 99 | sed 's/\$/ 1/' > dict.txt
        for s in train valid test; do f=$U/\$s.txt; [ -f \$f ] || f=\$f.gz
            sp-dedup --skip-bad \$f -o \$s.tsv; sp-lmdata \$s.tsv -o \$s.lm; done
        sp-lmdata --no-label train.tsv -o ulm.train; sp-lmdata --no-label valid.tsv -o ulm.valid
        sp-binarize --dict dict.txt --out ulm-bin train=ulm.train valid=ulm.valid
        sp-verbalize fit --method freq --seed 1 --dict dict.txt train.lm -o verbalizer.json
        for s in train valid test; do sp-verbalize apply verbalizer.json \$s.lm -o \$s.vlm; done
        sp-binarize --dict dict.txt --out bin train=train.vlm valid=valid.vlm test=test.vlm" &&
    step pretrain 120 "sp-pretrain $E/ulm-bin --save-dir $E/ulm --size ${ULM_SIZE:-big} --max-update $P --max-epoch 100 \
        --patience -1 --max-tokens 16384 --warmup-updates 100 --lr 5e-4 --device $DEVICE --precision $PRECISION --log-interval 50" &&
    # Prompt tuning stops itself by --max-time (validating and saving its best) before the step's limit,
    # keeping 70 s of the budget for decoding and scoring: a short budget gives a smaller accuracy, not none.
    train_limit=$(limit 150); (( train_limit > $(left) - 70 )) && train_limit=$(( $(left) - 70 ))
    (( train_limit < 60 )) && train_limit=60
    step train "$train_limit" "sp-train $E/bin --base $E/ulm/checkpoint_best.pt -o $E/prompt.pt --max-update $N --max-epoch 100 \
        --max-time $(( train_limit - 40 ))s --batch-size 32 --patience 100 --valid-every 500 --seed 1 \
        --device $DEVICE --precision $PRECISION" &&
    step sample 45 "sp-sample $E/bin --split test --prompt $E/prompt.pt --verbalizer $E/verbalizer.json \
        --device $DEVICE --precision $PRECISION -o $E/predictions.jsonl" &&
    step score 20 "sp-score $E/predictions.jsonl -o $E/metrics.json" &&
    say "prompt: ok, $("$PYTHON" -c '
import json, sys
u, m = (json.load(open(p)) for p in sys.argv[1:3])
acc, n, layers, dim = m["accuracy"], m["n"], u["layers"], u["embed_dim"]
params, ppl, unigram, device, precision = u["parameters"] / 1e6, u["valid_ppl"], u["unigram_valid_ppl"], u["device"], u["precision"]
print(f"test accuracy {acc:.4f} on {n} items; uLM {layers}x{dim} ({params:.1f} M parameters) on {device} in {precision}: "
      f"valid ppl {ppl:.2f} (add-one unigram {unigram:.2f})")' "$E/ulm/pretrain.json" "$E/metrics.json"); wall s: data $T_data, pretrain $T_pretrain ($P updates), train $T_train ($(grep -o 'stopped: .*' "$LOGS/prompt-train.log" | tail -1 || echo "up to $N updates")), sample $T_sample, score $T_score"
    cp "$E"/ulm/pretrain.json "$LOGS/pretrain.json" 2>/dev/null
    cp "$E"/metrics.json "$LOGS/metrics.json" 2>/dev/null
fi
