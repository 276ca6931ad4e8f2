# syntax=docker/dockerfile:1
# ovswire-agent and ovswire-cni. Build from the repository root:
#
#   docker build -f deploy/images/agent.Dockerfile -t ovswire-agent:0.1.0 .
#
# (podman and buildah take the same arguments.) The agent talks to Open vSwitch over OVSDB and
# OpenFlow and to the kernel over netlink, so the image carries no OVS or iproute2 tools; the
# shell is for the init container that installs ovswire-cni and for the probes.

FROM docker.io/library/rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
# Every workspace member must be present for cargo to load the workspace.
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY openflow openflow
COPY ovsdb ovsdb
COPY proto proto
COPY agent agent
COPY ovs-cni ovs-cni
COPY cli cli
COPY integration integration
COPY k8s k8s
# ovswire-cni runs on the host (started by the runtime or Multus), whatever its C library:
# it is linked statically (musl). The agent runs in this image and uses its glibc.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ovswire-agent \
    && cargo build --release --locked -p ovswire-cni --target "$(uname -m)-unknown-linux-musl" \
    && mkdir -p /out \
    && cp target/release/ovswire-agent "target/$(uname -m)-unknown-linux-musl/release/ovswire-cni" /out/

FROM docker.io/library/debian:12-slim
COPY --from=build /out/ovswire-agent /out/ovswire-cni /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/ovswire-agent"]
