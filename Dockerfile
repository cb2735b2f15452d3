# The allscreen image for x86-64 hosts: worker, producer, Flower and migrations.
FROM python:3.11-slim

# PyAudio (imported by edge_impulse_linux) builds against portaudio; libgl-free OpenCV is used.
RUN apt-get update \
 && apt-get install -y --no-install-recommends portaudio19-dev gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY allscreen ./allscreen
COPY cli ./cli
COPY worker ./worker
COPY producer ./producer
COPY readout ./readout
COPY reviewweb ./reviewweb
COPY model ./model
COPY migrations ./migrations
RUN pip install --no-cache-dir . && chmod +x /app/model/allscreen-all.eim

RUN useradd --create-home --uid 10001 allscreen
USER 10001
ENV ALLSCREEN_MODEL=/app/model/allscreen-all.eim \
    ALLSCREEN_EIM_PYTHON=/usr/local/bin/python \
    PYTHONUNBUFFERED=1
ENTRYPOINT []
CMD ["allscreen", "worker"]
