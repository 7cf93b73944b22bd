# syntax=docker/dockerfile:1
# nextword: one image for the API (default command) and the trainer (compose `trainer` service).
# CPU-only torch, a non-root user, the model directory as a volume. See docs/deployment.md.
ARG PYTHON_VERSION=3.11

# --- build: a virtual environment holding the runtime dependencies only ------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
# torch first and alone, from PyTorch's CPU index (no CUDA libraries): the largest layer,
# rebuilt only when constraints.txt changes.
COPY constraints.txt ./
RUN pip install -c constraints.txt --index-url https://download.pytorch.org/whl/cpu torch
# The other runtime dependencies, read from pyproject.toml (not its dev extra); code changes
# do not touch this layer either.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
    && pip install -c constraints.txt -r requirements.txt

# --- runtime: the environment, the code, nothing else -------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
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
    NEXTWORD_WORKERS=1
WORKDIR /app
COPY model ./model
COPY app ./app
COPY deploy ./deploy
USER nextword
# A fresh named volume takes this directory's owner (nextword), so the trainer can write to it.
VOLUME /models
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "deploy/healthcheck.py"]
CMD ["deploy/serve.sh"]
