#!/usr/bin/env bash
# The control plane: kubeadm init, flannel, Multus, a registry with the ovswire images built
# from /ovswire, ovswire itself and the sample ring. Safe to run again
# (`vagrant provision ovswire-cp --provision-with control-plane`).
set -euo pipefail
: "${NODE_IP:?}" "${TOKEN:?}"
export DEBIAN_FRONTEND=noninteractive
export KUBECONFIG=/etc/kubernetes/admin.conf
FLANNEL_URL="${FLANNEL_URL:-https://github.com/flannel-io/flannel/releases/latest/download/kube-flannel.yml}"
MULTUS_URL="${MULTUS_URL:-https://raw.githubusercontent.com/k8snetworkplumbingwg/multus-cni/v4.2.2/deployments/multus-daemonset-thick.yml}"
REGISTRY="${NODE_IP}:5000"
VERSION=0.1.0

if [ ! -f /etc/kubernetes/admin.conf ]; then
  kubeadm init \
    --apiserver-advertise-address="${NODE_IP}" \
    --pod-network-cidr=10.244.0.0/16 \
    --token="${TOKEN}" --token-ttl=0 \
    --node-name="$(hostname)"
fi
install -d -o vagrant -g vagrant /home/vagrant/.kube
install -m 0600 -o vagrant -g vagrant /etc/kubernetes/admin.conf /home/vagrant/.kube/config
# Routers run on every node, this one included.
kubectl taint nodes "$(hostname)" node-role.kubernetes.io/control-plane:NoSchedule- 2>/dev/null || true

# flannel, the pod network, on the private interface (the NAT one is the same on every VM).
iface=$(ip -o -4 addr show | awk -v ip="${NODE_IP}" '$4 ~ "^"ip"/" {print $2; exit}')
curl -fsSL "${FLANNEL_URL}" \
  | sed -E "s|^( *)- --kube-subnet-mgr$|&\n\1- --iface=${iface}|" \
  | kubectl apply -f -
kubectl -n kube-flannel rollout status ds/kube-flannel-ds --timeout=10m

# Multus (thick plugin): ovswire interfaces are its additional networks.
kubectl apply -f "${MULTUS_URL}"
kubectl -n kube-system rollout status ds/kube-multus-ds --timeout=10m

# A registry for the agent's image, which every node pulls from (see common.sh). The nodes run
# Open vSwitch from Debian's packages, so deploy/ovs is not used here.
apt-get install -y -qq --no-install-recommends docker-registry podman >/dev/null
systemctl enable --now docker-registry
image="${REGISTRY}/ovswire-agent:${VERSION}"
echo "control-plane: building ${image} (the first build takes a while)"
podman build --quiet -f /ovswire/deploy/images/agent.Dockerfile -t "${image}" /ovswire
podman push --quiet --tls-verify=false "${image}"

# ovswire (its images from the registry) with the peer CA its agents' certificates come from,
# then the sample lab. The CA is made with the agent image's own `pki init`.
kubectl apply -f /ovswire/deploy/namespace.yaml
if ! kubectl -n ovswire-system get secret ovswire-peer-ca >/dev/null 2>&1; then
  ca="$(mktemp -d)"
  podman run --rm -v "${ca}:/ca" "${image}" /usr/local/bin/ovswire-agent pki init --dir /ca/peer-ca
  kubectl -n ovswire-system create secret generic ovswire-peer-ca \
    --from-file="${ca}/peer-ca/ca.crt" --from-file="${ca}/peer-ca/ca.key"
  rm -rf "${ca}"
fi
kubectl apply -k /ovswire/vagrant/manifests/ovswire
kubectl wait --for=condition=Established --timeout=2m \
  crd/topologies.ovswire.io crd/network-attachment-definitions.k8s.cni.cncf.io
kubectl apply -f /ovswire/vagrant/manifests/ring.yaml
echo "control-plane: cluster up; the ring's pods start as the workers join"
