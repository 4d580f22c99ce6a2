"""A small asyncio Kubernetes client shared by the built-in cluster's components and
the reconciler: REST over HTTPS with kubeconfig credentials (:mod:`kubeclient.rest`),
informers that keep a local cache from list+watch (:mod:`kubeclient.informer`), and a
rate-limited work queue of keys (:mod:`kubeclient.workqueue`). It depends on nothing
else in this repository."""
