# The ma-ray image for every pod of the KubeRay cluster: the Ray base image of the same Ray version and Python
# as pyproject.toml, plus the project. Build: docker build -t ma-ray:0.1.0 .
# GPU workers: docker build --build-arg RAY_IMAGE=rayproject/ray:2.60.0-py311-gpu -t ma-ray:0.1.0-gpu .
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311
FROM ${RAY_IMAGE}

WORKDIR /home/ray/ma-ray
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users ma_ray ./ma_ray
COPY --chown=ray:users actors ./actors
COPY --chown=ray:users apps ./apps
RUN pip install --no-cache-dir .

# Jobs run `python -m apps.<name>` from here, so the entrypoints of the RayJob manifests resolve.
ENV MA_RAY_STATE_DIR=/tmp/ma_ray
