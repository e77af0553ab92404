# crossemo: a small CPU-only image that serves the registered model (default command) or runs
# any crossemo / dvc command. See docs/concepts/docker.md.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A non-root user owns nothing but its home and the working folder.
RUN useradd --create-home --uid 10001 crossemo
WORKDIR /app

# The CPU build of torch first (PyPI's default Linux wheel carries CUDA: gigabytes), then crossemo.
# soundfile's and opensmile's wheels bring their native libraries, so no apt packages are needed.
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install . \
    && chown -R crossemo:crossemo /app

USER 10001
EXPOSE 5001
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5001/ping', timeout=4)"]

ENTRYPOINT ["crossemo"]
CMD ["serve", "--host", "0.0.0.0", "--port", "5001", "--tracking-uri", "sqlite:////app/mlruns/mlflow.db"]
