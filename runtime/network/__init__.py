"""Cluster networking services of the built-in cluster: what pods need from the network
besides their own addresses — the service proxy (:mod:`runtime.network.proxy`, iptables
rules as kube-proxy writes them), the cluster DNS server (:mod:`runtime.network.dns`) and
the ingress router (:mod:`runtime.network.ingress`), all reading Services and
EndpointSlices through :mod:`runtime.network.objects`. None is started by ``gitops cluster
up`` yet (wiring them in is the networking issue's open work).

Who uses it: the process that runs the built-in cluster; nothing in ``gitops/`` imports it.
"""
