# Image for the clawstream workers (sink, stream worker, notifier, fleet simulator).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends tesseract-ocr \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY clawstream clawstream
COPY schemas schemas
COPY producers producers
COPY streams streams
COPY consumers consumers
COPY infra infra
# editable, so the code finds infra/ (ClickHouse migrations, rules) beside it
RUN pip install --no-cache-dir -e .
ENV CLAWSTREAM_DATA_DIR=/var/lib/clawstream
VOLUME /var/lib/clawstream
CMD ["clawstream", "--help"]
