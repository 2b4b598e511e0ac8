# The artifact's image: the whole workflow (training on a GPU, the offline demo on a CPU, the
# paper's PDF) with exactly the environment CI tests.
#
#   docker build --build-arg UID="$(id -u)" \
#       --build-arg GIT_COMMIT="$(git rev-parse HEAD)$(git diff --quiet HEAD || echo -dirty)" \
#       -t convnext-tinyimagenet:0.1.0 .
#   docker run --gpus all -v "$PWD/results:/project/results" convnext-tinyimagenet:0.1.0 \
#       snakemake --cores all                                           # the paper (GPU)
#   docker run convnext-tinyimagenet:0.1.0                               # the offline demo (CPU)
#
# No CUDA base image: the pinned torch wheel (envs/requirements.txt) brings its own CUDA 13.0
# runtime as nvidia-* wheels; the host needs only an NVIDIA driver that supports CUDA 13.0
# (>= 580 on Linux) and the NVIDIA Container Toolkit for `--gpus`.
#
# Python 3.11, the minor version CI tests (tests/test_container.py checks that they agree);
# 3.11.7 is the patch release of the development machines.
FROM python:3.11.7-slim-bookworm

# The paper's TeX, the same Debian packages .ci/run installs (pinned: bookworm's versions).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        latexmk=1:4.79-1 \
        texlive-latex-extra=2022.20230122-4 \
        texlive-latex-recommended=2022.20230122-3 \
    && rm -rf /var/lib/apt/lists/*

# The environment lives outside the project and first on PATH: the workflow's rules call
# `python`, `papermill`... from PATH. Downloads go to caches that are volumes (below).
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/home/artifact/.cache/huggingface \
    TORCH_HOME=/home/artifact/.cache/torch \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

WORKDIR /project

# Packages first, from envs/ alone: a code change does not reinstall them. Exactly the file CI
# and `make` install (requirements.txt pins what the artifact imports, lock.txt the rest).
# PIP_EXTRA_INDEX_URL, optional: package indexes besides PyPI. Of two equal files pip takes the
# later index's, so a local mirror of the torch and CUDA wheels (3 GB) saves downloading them
# (.ci/image-test.sh serves its machine's); the pins decide what is installed either way.
ARG PIP_EXTRA_INDEX_URL
COPY envs/ envs/
RUN python -m venv "${VIRTUAL_ENV}" \
    && pip install --no-cache-dir -r envs/requirements.txt

# A non-root user, after the packages: a build for another uid reuses their layers. Build with
# `--build-arg UID="$(id -u)"` so that what the container writes into a bind-mounted results/
# belongs to you on the host. A uid the base image already has is not taken over: root's 0 (a
# build by root) gives the user uid 1000, whose files root on the host can read anyway.
ARG UID=1000
RUN uid="${UID}"; \
    if getent passwd "${uid}" >/dev/null; then uid=1000; fi; \
    useradd --create-home --uid "${uid}" --user-group artifact

# The package itself, editable as `make` installs it: it finds config/ beside src/.
# Then the Jupyter kernel papermill runs the experiment notebook with.
COPY pyproject.toml README.md ./
COPY src/ src/
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
    && python -m ipykernel install --sys-prefix --name python3

# The workflow: Snakefile, rules, config, the experiment notebook, the paper's source, profiles.
COPY Snakefile ./
COPY rules/ rules/
COPY config/ config/
COPY notebooks/ notebooks/
COPY paper/ paper/
COPY profiles/ profiles/

# What the workflow writes: results/ (every output, the paper's PDF included), resources/ (the
# decoded dataset and the published predictions), .snakemake/ (its metadata), and the download
# caches. Created here so that volumes start out owned by the user.
RUN mkdir -p results resources .snakemake "${HF_HOME}" "${TORCH_HOME}" \
    && chown -R artifact:artifact /project/results /project/resources /project/.snakemake \
        /home/artifact/.cache \
    && chown artifact:artifact /project

# The commit the image is built from, for every run's provenance.json (the image has no .git):
#   --build-arg GIT_COMMIT="$(git rev-parse HEAD)$(git diff --quiet HEAD || echo -dirty)"
# Last, so that a new commit rebuilds no earlier layer.
ARG GIT_COMMIT=""
ENV CONVNEXT_TINYIMAGENET_COMMIT=${GIT_COMMIT}

# By name: its uid is the build's choice (UID, or 1000 for a root build). Kubernetes'
# runAsNonRoot, which cannot check a name, then needs `runAsUser` set to that uid.
# hadolint ignore=DL3066
USER artifact

# Results, the decoded dataset (1.35 GB) and the downloaded weights and dataset outlive the
# container (named or bind-mounted volumes are reused by the next `docker run`).
VOLUME ["/project/results", "/project/resources", "/home/artifact/.cache/huggingface", "/home/artifact/.cache/torch"]

# A bare `docker run IMAGE` runs the offline demo.
CMD ["snakemake", "--cores", "all", "--configfile", "config/smoke.yaml"]
