#!/usr/bin/env bash
# Download the wheels that tests/gpu_check.sh installs on a GPU machine without network or the
# project's venv (its Python: 3.12 on x86-64, torch preinstalled), into .whl/ (about 41 MiB):
# the stack of requirements.txt that such a machine lacks. Run here, with network:
#
#   bash tests/gpu_wheels.sh [PYTHON_VERSION (3.12)]
#
# antlr4-python3-runtime 4.9.3 (omegaconf's pin) has only an sdist: it is built here (pure Python).
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-3.12}
abi=cp${version/./}
mkdir -p .whl
for package in ve-fairseq==0.12.3 numpy==1.26.4 hydra-core==1.3.2 omegaconf==2.3.0 bitarray==3.12.3 \
               soundfile==0.14.0 cffi==1.17.1 pycparser==2.22 PyYAML==6.0.2 packaging==24.2 typing_extensions==4.12.2; do
    python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version "$version" --implementation cp --abi "$abi" --abi none --abi abi3 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "$package"
done
python3 -m pip wheel -q --disable-pip-version-check --no-deps -w .whl antlr4-python3-runtime==4.9.3
ls .whl
du -sh .whl
