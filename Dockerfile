# syntax=docker/dockerfile:1
# The dropout-risk prediction API (service.app:app under uvicorn), as a non-root image.
#
#   docker build -t dropout-risk .
#   docker run -d -p 8000:8000 -v dropout-risk-var:/app/var dropout-risk
#   # The database (SQLite by default, in the volume; set DATABASE_URL for PostgreSQL) holds
#   # the API keys; create one with the same image (the token is printed alone):
#   docker run --rm -v dropout-risk-var:/app/var dropout-risk \
#       dropout-risk keys create --name NAME --tenant CLINIC --scopes predict
#
# Workers: one per core by default, i.e. nproc (capped at 64; run without OMP_NUM_THREADS,
# which GNU nproc would otherwise report), which counts the CPUs the
# container may run on (--cpuset-cpus) but not a --cpus quota; set DROPOUT_RISK_WORKERS to
# choose. The count is computed by the small shell form of CMD below and passed as --workers.
# tests/test_dockerfile.py checks this file against the repository (no Docker needed).

# ---- build: install the project and its dependencies into a virtual environment
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY training/ training/
COPY service/ service/
RUN pip install --no-cache-dir .

# ---- runtime: the environment and the model registry, nothing else
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 \
    DROPOUT_RISK_MODELS_DIR=/app/models \
    DROPOUT_RISK_DATABASE_URL=sqlite:////app/var/dropout-risk.db \
    NUMBA_CACHE_DIR=/opt/numba-cache \
    DROPOUT_RISK_PSEUDONYM_KEY_FILE=/app/var/pseudonym.key
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Owned by the service user: promoting a model (models:admin) rewrites models/registry.json.
COPY --chown=10001:10001 models/ /app/models/
# numba's compile cache, baked in: the scoring kernels are compiled here, by scoring the
# champion's reference episode through the service's warm-up (service/warmup.py), so a new
# container loads them instead of compiling them for 4-5 s per worker. Outside the volume
# (a mounted volume would hide it); owned by the service user, since numba uses a cache
# folder only where it can write (a promoted model of another kind adds its kernels).
RUN mkdir -p /opt/numba-cache \
    && python -m service.warmup /app/models \
    && chown -R 10001:10001 /opt/numba-cache
# Keys and the pseudonym key: a volume, so they survive new images and never enter one.
RUN mkdir -p /app/var && chown 10001:10001 /app/var && chmod 700 /app/var
VOLUME ["/app/var"]
USER 10001:10001
EXPOSE 8000
# slim has no curl: Python's urllib fails (exit 1) on a refused connection or a non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# exec: uvicorn becomes PID 1 and receives docker stop's SIGTERM for a graceful shutdown.
CMD ["/bin/sh", "-c", "cores=$(env -u OMP_NUM_THREADS nproc); [ \"$cores\" -le 64 ] || cores=64; exec dropout-risk serve --host 0.0.0.0 --port 8000 --models-dir /app/models --workers \"${DROPOUT_RISK_WORKERS:-$cores}\""]
