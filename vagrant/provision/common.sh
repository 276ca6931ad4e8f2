#!/usr/bin/env bash
# Every node: containerd, kubelet/kubeadm/kubectl, Open vSwitch, and the kernel settings
# kubeadm checks. Safe to run again.
set -euo pipefail
: "${NODE_IP:?}" "${CONTROL_PLANE_IP:?}" "${K8S_VERSION:?}"
export DEBIAN_FRONTEND=noninteractive

# Kubernetes: no swap, bridged traffic seen by iptables, forwarding on. openvswitch: the kernel
# datapath ovswire-agent uses (OVSWIRE_DATAPATH_TYPE=system).
swapoff -a
sed -i '/\sswap\s/s/^\([^#]\)/#\1/' /etc/fstab
printf '%s\n' overlay br_netfilter openvswitch > /etc/modules-load.d/ovswire-lab.conf
modprobe overlay
modprobe br_netfilter
modprobe openvswitch
cat > /etc/sysctl.d/90-ovswire-lab.conf <<SYSCTL
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
SYSCTL
sysctl --system >/dev/null

apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  ca-certificates curl gpg iptables conntrack containerd openvswitch-switch >/dev/null

# containerd as kubelet expects it (systemd cgroups, the pause image kubeadm uses), and the
# control plane's registry (plain HTTP on port 5000) for the ovswire images built there.
mkdir -p /etc/containerd
containerd config default > /etc/containerd/config.toml
sed -i \
  -e 's/SystemdCgroup = false/SystemdCgroup = true/' \
  -e 's|sandbox_image = .*|sandbox_image = "registry.k8s.io/pause:3.10"|' \
  -e 's|bin_dir = .*|bin_dir = "/opt/cni/bin"|' \
  -e 's|config_path = ""|config_path = "/etc/containerd/certs.d"|' \
  /etc/containerd/config.toml
registry="${CONTROL_PLANE_IP}:5000"
mkdir -p "/etc/containerd/certs.d/${registry}"
cat > "/etc/containerd/certs.d/${registry}/hosts.toml" <<HOSTS
server = "http://${registry}"

[host."http://${registry}"]
  capabilities = ["pull", "resolve"]
HOSTS
systemctl restart containerd

# kubelet, kubeadm, kubectl and the reference CNI plugins (into /opt/cni/bin) from the
# Kubernetes project's packages.
mkdir -p /etc/apt/keyrings
curl -fsSL "https://pkgs.k8s.io/core:/stable:/${K8S_VERSION}/deb/Release.key" \
  | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/${K8S_VERSION}/deb/ /" \
  > /etc/apt/sources.list.d/kubernetes.list
apt-get update -qq
apt-get install -y -qq kubelet kubeadm kubectl kubernetes-cni >/dev/null
apt-mark hold kubelet kubeadm kubectl >/dev/null
# The NAT interface has the same address on every VM: use the private network's.
echo "KUBELET_EXTRA_ARGS=--node-ip=${NODE_IP}" > /etc/default/kubelet
systemctl enable --now kubelet
systemctl enable --now openvswitch-switch
echo "common: $(hostname) ready for kubeadm (containerd $(containerd --version | awk '{print $3}'), $(ovs-vsctl --version | head -1))"
