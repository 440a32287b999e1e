# The loader base image: the framework plus what a wrapper project needs to be served (no layer of
# its own: /app, owned by the image's user, is made in the framework image).
# A wrapper image (`asectl loader build DIR`) is FROM this one, copies the project to /app and
# pip-installs its requirements.txt; the entry point serves /app:
#   asectl loader run /app --host 0.0.0.0 --port 50051 --data-port 50052
# 50052 is the data port (the lean wire the gateways call; the loader registers it), 50051 the gRPC
# interop port (`asectl loader call`, `asectl loader test --image`). A data port beyond loopback
# needs the cluster's secret from the config centre (ASE_CONFIG_ADDRESS, e.g. etcd://etcd:2379);
# without one, add `--standalone --data-host 127.0.0.1` (gRPC only from outside the container).
# Build: docker build --network host -f docker/loader.Dockerfile \
#          --build-arg FRAMEWORK=ase-serving:VERSION -t ase-serving-loader:VERSION .
ARG FRAMEWORK=ase-serving:latest
FROM ${FRAMEWORK}
WORKDIR /app
ENV ASE_LOADER_PORT=50051 ASE_LOADER_DATA_PORT=50052
EXPOSE 50051 50052
ENTRYPOINT ["asectl", "loader", "run", "/app", "--host", "0.0.0.0", "--port", "50051", "--data-port", "50052"]
