#!/usr/bin/env bash
# Here, before a GPU call: the wheels the GPU machine lacks (its image has torch, numpy,
# scipy, scikit-learn, matplotlib, pyyaml, pillow; not optuna, pydantic or their needs) into
# .whl/, and CIFAR-10's JPEG tarball into .gpu/; both ignored by git (.git/info/exclude).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
mkdir -p .whl .gpu
# the versions pyproject's pins resolve to here (a second version of one stops the install)
for spec in optuna==5.1.0 alembic==1.20.1 sqlalchemy==2.1.9 colorlog==6.12.0 mako==1.4.3 \
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "$spec"
done
cp ../shared/cifar10/cifar10_jpg.tar.gz .gpu/
du -sh .whl .gpu
