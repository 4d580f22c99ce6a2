"""The kubelet: one per node; watches the pods bound to its node and drives a container
engine through :class:`runtime.kubelet.cri.ContainerRuntime` (podman, docker, or the
fake runtime for tests and scale benchmarks)."""
