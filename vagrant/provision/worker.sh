#!/usr/bin/env bash
# A worker: joins the cluster once the control plane answers. Safe to run again.
set -euo pipefail
: "${CONTROL_PLANE_IP:?}" "${TOKEN:?}"

if [ -f /etc/kubernetes/kubelet.conf ]; then
  echo "worker: $(hostname) already joined"
  exit 0
fi
deadline=$((SECONDS + 3600))
until curl -ksf "https://${CONTROL_PLANE_IP}:6443/readyz" >/dev/null; do
  if [ "${SECONDS}" -ge "${deadline}" ]; then
    echo "worker: the control plane at ${CONTROL_PLANE_IP}:6443 did not come up within an hour;" \
      "see 'vagrant ssh ovswire-cp -c \"sudo journalctl -u kubelet\"', then run" \
      "'vagrant provision $(hostname) --provision-with worker'" >&2
    exit 1
  fi
  sleep 10
done
# A throwaway lab: the CA is not pinned (the token alone authenticates the join).
kubeadm join "${CONTROL_PLANE_IP}:6443" \
  --token="${TOKEN}" \
  --discovery-token-unsafe-skip-ca-verification \
  --node-name="$(hostname)"
