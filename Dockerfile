# The API image for docker-compose. The consoles' map library comes from npm at build.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cad cad
COPY dispatch dispatch
COPY gis gis
COPY console_ui console_ui
COPY loadtests loadtests
COPY scripts scripts
RUN pip install --no-cache-dir . && bash scripts/console-deps.sh
ENV CAD_ENV=production
EXPOSE 8000
CMD ["sh", "-c", "cad migrate && cad serve --host 0.0.0.0 --port 8000 --workers ${CAD_WORKERS:-2}"]
