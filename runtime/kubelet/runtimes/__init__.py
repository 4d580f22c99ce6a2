"""Implementations of :class:`runtime.kubelet.cri.ContainerRuntime`: ``podman``,
``docker`` and ``fake``."""
