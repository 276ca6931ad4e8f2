//! The agent's side of CNI: requests forwarded by `ovswire-cni`, answered per the CNI spec.
