# opsgate container image: one image for web, worker and release (pick the command).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 OPSGATE_LOG_FORMAT=json
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY bot ./bot
COPY commands ./commands
COPY connectors ./connectors
COPY migrations ./migrations
RUN pip install . && useradd --system --uid 10001 opsgate && mkdir -p /data && chown opsgate /data
USER opsgate
WORKDIR /data
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"3000\")}/healthz', timeout=2)"
# web: opsgate serve   worker: opsgate worker   release: opsgate db upgrade
CMD ["opsgate", "serve"]
