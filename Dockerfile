# Caretaker agent image: `docker compose up -d --build` (see docker-compose.yml), or
#   docker build -t caretaker . && docker run -v ./config.yaml:/etc/caretaker/config.yaml:ro -p 9464:9464 caretaker
# The bookworm variant of python:3.11-slim pins Debian 12, whose postgresql-client is 15: the same major
# as the stack's server, so pg_dump/pg_restore (backup, verify_backup, restore) write and read
# archives that PostgreSQL 15 accepts (a newer pg_dump emits settings an older server rejects).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/caretaker --create-home caretaker

WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent ./agent
RUN pip install . && rm -rf /src

USER caretaker
WORKDIR /var/lib/caretaker
EXPOSE 9464
# /healthz answers as soon as the HTTP server runs; python, because the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]
CMD ["caretaker", "run", "--config", "/etc/caretaker/config.yaml"]
