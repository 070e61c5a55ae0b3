# Xypr image: one image, every service; the command picks the role (see docker-compose.yml).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src ./src
RUN uv sync --frozen --no-dev
ENV PATH="/app/.venv/bin:$PATH"
RUN useradd --system --uid 10001 xypr && mkdir -p /var/lib/xypr && chown xypr /var/lib/xypr
# Every process keeps scratch files in its data folder; /app belongs to root.
ENV XYPR_DATA_DIR=/var/lib/xypr XYPR_HOST=0.0.0.0
USER xypr
EXPOSE 3000
CMD ["xypr", "serve", "api-gateway", "--port", "3000"]
