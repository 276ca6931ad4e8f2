# syntax=docker/dockerfile:1
# Open vSwitch from Debian's packages, for deploy/ovs/daemonset.yaml (nodes without OVS
# packages). Build from the repository root:
#
#   docker build -f deploy/images/ovs.Dockerfile -t ovswire-ovs:0.1.0 .
#
# The DaemonSet runs ovsdb-server and ovs-vswitchd from it in the foreground; ovs-vsctl,
# ovsdb-client and ovs-appctl are there for the probes and for debugging
# (`kubectl -n ovswire-system exec ds/ovswire-ovs -c ovs-vswitchd -- ovs-vsctl show`).

FROM docker.io/library/debian:12-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends openvswitch-switch \
    && rm -rf /var/lib/apt/lists/*
