# nextword: one Dockerfile, two images. The default target, `runtime`, serves the API with the
# runtime dependencies only; the `train` target adds pyproject's `train` extra (corpus, word2vec,
# plots) for the compose `trainer` service. CPU-only torch, a non-root user, the model directory
# as a volume. See docs/deployment.md.
#
# Build arguments: BASE_IMAGE (a Debian-based image whose `python` is 3.11 or newer) and
# TORCH_INDEX_URL (where torch comes from; empty: pip's own configuration, e.g. PyPI or a
# PIP_INDEX_URL / pip.conf of the base image; constraints.txt pins its version either way).
ARG BASE_IMAGE=python:3.11-slim

# --- build: a virtual environment holding the runtime dependencies only ------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
# torch first and alone, by default from PyTorch's CPU index (no CUDA libraries): the largest
# layer, rebuilt only when constraints.txt or the index changes.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY constraints.txt ./
RUN pip install -c constraints.txt ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch
# The wheel's C++ headers and C++ test programs (about 100 MB) serve only to compile extensions
# and to test libtorch; neither the API nor the trainer does either.
RUN rm -rf /opt/venv/lib/python3*/site-packages/torch/include \
    /opt/venv/lib/python3*/site-packages/torch/bin/test_*
# The other runtime dependencies, read from pyproject.toml; code changes do not touch this layer.
COPY pyproject.toml deploy/requirements.py ./
RUN python requirements.py > requirements.txt \
    && python requirements.py train > train-requirements.txt \
    && pip install -c constraints.txt -r requirements.txt

# --- serving: the environment, the code and the user, shared by both targets --------------
FROM ${BASE_IMAGE} AS serving
RUN useradd --create-home --uid 10001 nextword \
    && mkdir /models && chown nextword:nextword /models
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NEXTWORD_MODEL_DIR=/models/default \
    NEXTWORD_HOST=0.0.0.0 \
    NEXTWORD_PORT=8000 \
    NEXTWORD_WORKERS=1 \
    PYTHONWARNINGS="ignore:Failed to initialize NumPy:UserWarning"
# (torch warns at import when numpy is absent, as it is in the API image; nothing here needs it)
WORKDIR /app
COPY model ./model
COPY app ./app
COPY deploy ./deploy

# --- train: serving plus the `train` extra, one layer on top; trains into /models ---------
FROM serving AS train
COPY --from=build /build/constraints.txt /build/train-requirements.txt /tmp/
RUN PIP_NO_CACHE_DIR=1 pip install -c /tmp/constraints.txt -r /tmp/train-requirements.txt
USER nextword
# A fresh named volume takes this directory's owner (nextword), so the trainer can write to it.
VOLUME /models
CMD ["python", "-m", "deploy.train_if_missing"]

# --- runtime (the default target): the API --------------------------------------------------
FROM serving AS runtime
USER nextword
VOLUME /models
EXPOSE 8000
# Readiness, not liveness: healthy only once the model is loaded and serving (GET /ready).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "deploy/healthcheck.py"]
CMD ["deploy/serve.sh"]
