"""kube-scheduler's default plugins as pure functions over :class:`PodInfo`,
:class:`NodeInfo` and :class:`ClusterState` — one module per plugin family:

* :mod:`.nodes` — NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodePorts,
  ImageLocality;
* :mod:`.noderesources` — NodeResourcesFit (filter and LeastAllocated score) and
  NodeResourcesBalancedAllocation;
* :mod:`.volumes` — VolumeRestrictions, VolumeBinding, VolumeZone;
* :mod:`.podtopologyspread` — PodTopologySpread (explicit and system-default spreading);
* :mod:`.interpodaffinity` — InterPodAffinity.

Filters return ``None`` when the node fits, else a :class:`~runtime.scheduler.status.Status`.
:mod:`runtime.scheduler.framework` runs them in kube-scheduler's order and weights the
scores as its default profile does.
"""
