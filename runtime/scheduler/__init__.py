"""The built-in cluster's scheduler, with kube-scheduler's semantics: filter → score →
bind, its default plugins and weights, its queue, backoff and unschedulable messages.

Public API: :class:`Scheduler` and :class:`SchedulerOptions` (``await
Scheduler(client, SchedulerOptions()).run()``). The pieces, one concern per module:
:mod:`.scheduler` (informers, loop, binding, status and events), :mod:`.queue`,
:mod:`.framework` (one scheduling cycle and the unschedulable message), :mod:`.plugins`,
:mod:`.preemption`, :mod:`.nodeinfo` (the cache), :mod:`.podinfo`, :mod:`.labels`,
:mod:`.resources`, :mod:`.status` and :mod:`.events`.
"""

from runtime.scheduler.scheduler import Scheduler, SchedulerOptions, SchedulerStats

__all__ = ["Scheduler", "SchedulerOptions", "SchedulerStats"]
