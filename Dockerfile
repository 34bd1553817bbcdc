# Production-like image: the same code runs web (daphne), worker and beat; compose picks the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends libmagic1 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
# torch: the CPU build keeps the image small; the index is only used at build time.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt
COPY . .
RUN DJANGO_DEBUG=true python manage.py collectstatic --noinput
RUN useradd --create-home app && mkdir -p /app/var && chown -R app /app/var
USER app
EXPOSE 8000
# daphne on 0.0.0.0:8000 (WEB_SERVER, WEB_WORKERS: chatbot_saas/asgi_server.py).
CMD ["python", "-m", "chatbot_saas.asgi_server", "--host", "0.0.0.0", "--port", "8000", "--max-frame-bytes", "16384"]
