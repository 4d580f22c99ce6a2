"""Cluster networking services of the built-in cluster: what pods need from the network
besides their own addresses — the cluster DNS server (:mod:`runtime.network.dns`) and the
ingress router (:mod:`runtime.network.ingress`). Neither is wired into ``gitops cluster
up`` yet (the service proxy and the wiring are the networking issue's open work).

Who uses it: the process that runs the built-in cluster; nothing in ``gitops/`` imports it.
"""
