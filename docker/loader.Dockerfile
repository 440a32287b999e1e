# The loader base image: the framework plus what a wrapper project needs to be served.
# A wrapper image (`asectl loader build DIR`) is FROM this one, copies the project to /app and
# pip-installs its requirements.txt; the entry point serves /app:
#   asectl loader run /app --host 0.0.0.0 --port 50051
# Build: docker build --network host -f docker/loader.Dockerfile \
#          --build-arg FRAMEWORK=ase-serving:VERSION -t ase-serving-loader:VERSION .
ARG FRAMEWORK=ase-serving:latest
FROM ${FRAMEWORK}
USER root
RUN mkdir -p /app && chown 10001:10001 /app
USER 10001
WORKDIR /app
ENV ASE_LOADER_PORT=50051
EXPOSE 50051
ENTRYPOINT ["asectl", "loader", "run", "/app", "--host", "0.0.0.0", "--port", "50051"]
