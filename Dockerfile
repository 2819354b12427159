# Images of the gateway and the probe, as the Helm chart names them:
#
#   docker build --target gateway -t ghcr.io/eagle-eye-ai/gateway:0.1.0 .
#   docker build --target probe   -t ghcr.io/eagle-eye-ai/probe:0.1.0 .
#
# The gateway is a static binary (no cgo) on distroless/static. The probe is built with cgo:
# go-nvml opens the host's libnvidia-ml.so.1 with dlopen, which the NVIDIA container runtime
# mounts into the pod, so it needs glibc: distroless/base. Both run as the distroless
# nonroot user (65532), as the chart's security contexts expect (the chart runs the probe as
# root only when it reads the host kernel log); the rule files, catalog, dashboards and page
# are embedded in the binaries.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
ENV LDFLAGS="-s -w -X github.com/prometheus/common/version.Version=${VERSION} -X github.com/prometheus/common/version.Revision=${REVISION}"
RUN CGO_ENABLED=0 go build -trimpath -ldflags "${LDFLAGS}" -o /out/gateway ./cmd/gateway && \
    CGO_ENABLED=1 CGO_CFLAGS="-O2 -Wno-deprecated-declarations" \
      go build -trimpath -ldflags "${LDFLAGS}" -o /out/probe ./cmd/probe

FROM gcr.io/distroless/static-debian12:nonroot AS gateway
COPY --from=build /out/gateway /usr/local/bin/gateway
# HTTP (PromQL API, remote-write, page), embedded NATS, ZeroMQ.
EXPOSE 9095 4222 5556
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/gateway"]

FROM gcr.io/distroless/base-debian12:nonroot AS probe
COPY --from=build /out/probe /usr/local/bin/probe
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/probe"]
