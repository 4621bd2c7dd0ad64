# onnxops trainer image. Build from the repository root (make images, or scripts/build-images.sh):
#   docker build -f images/trainer.Dockerfile -t onnxops-trainer .
# Stage 1 builds the onnxops wheel and, in the same step,
# the wheels of the [trainer] extra; stage 2 installs only those wheels, offline, on a clean base: no
# compilers, no sources, no build tools.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
# CREATED (the build's time, set by scripts/build-images.sh) is written into /wheels: each build makes the
# wheels afresh. A builder stage taken from the layer cache would leave nothing for podman 4.3 to bind-mount
# into the final stage ("couldn't find .../wheels on host to bind mount"), so a second build of an
# unchanged tree failed.
ARG CREATED=unknown
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN mkdir /wheels && echo "${CREATED}" > /wheels/built-at \
 && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && pip wheel --no-cache-dir --wheel-dir /wheels "$(ls /wheels/onnxops-*.whl)[trainer]"

FROM ${PYTHON_IMAGE}
ARG ONNXOPS_VERSION=0.1.0
ARG VCS_REF=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="onnxops trainer" \
      org.opencontainers.image.description="Training entrypoint: data, scikit-learn / XGBoost / LightGBM fit, evaluation, ONNX export, parity check, baseline profile." \
      org.opencontainers.image.version="${ONNXOPS_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="onnxops"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp
# LightGBM's wheel links the system OpenMP runtime (scikit-learn and xgboost bundle their own)
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels "onnxops[trainer]==${ONNXOPS_VERSION}" \
 && groupadd --gid 10001 onnxops \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin onnxops
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT ["python", "-m", "onnxops.trainer"]
