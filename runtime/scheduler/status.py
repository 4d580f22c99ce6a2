"""Plugin verdicts: why a node was rejected, and whether preemption could change it —
kube-scheduler's ``framework.Status`` with the codes ``Unschedulable`` and
``UnschedulableAndUnresolvable``.

Who calls it: every filter plugin (they return ``None`` for "fits" or a :class:`Status`),
the framework (which counts the reasons into the unschedulable message) and preemption
(which only looks at nodes whose status is resolvable). Reasons are kube-scheduler's
strings, word for word, because users and tools grep for them.
"""

from __future__ import annotations

UNSCHEDULABLE = 1
UNRESOLVABLE = 2


class Status:
    """A rejection: a code, the plugin that returned it, and one or more reasons."""

    __slots__ = ("code", "plugin", "reasons")

    def __init__(self, code: int, plugin: str, *reasons: str) -> None:
        self.code = code
        self.plugin = plugin
        self.reasons: tuple[str, ...] = reasons

    @property
    def resolvable(self) -> bool:
        """Unschedulable (preemption may help) rather than UnschedulableAndUnresolvable."""
        return self.code == UNSCHEDULABLE

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Status)
            and other.code == self.code
            and other.plugin == self.plugin
            and other.reasons == self.reasons
        )

    def __hash__(self) -> int:
        return hash((self.code, self.plugin, self.reasons))

    def __repr__(self) -> str:
        kind = "Unschedulable" if self.code == UNSCHEDULABLE else "UnschedulableAndUnresolvable"
        return f"Status({kind}, {self.plugin}, {self.message!r})"


# Reasons, as kube-scheduler words them (v1.35).
NODE_UNSCHEDULABLE = "node(s) were unschedulable"
NODE_NAME = "node(s) didn't match the requested node name"
UNTOLERATED_TAINT = "node(s) had untolerated taint(s)"
NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
NODE_AFFINITY_CONFLICT = "pod affinity terms conflict"
NODE_PORTS = "node(s) didn't have free ports for the requested pod ports"
TOO_MANY_PODS = "Too many pods"
DISK_CONFLICT = "node(s) had no available disk"
RWOP_CONFLICT = (
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"
)
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
VOLUME_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
VOLUME_NODE_CONFLICT = "node(s) had volume node affinity conflict"
PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
VOLUME_ZONE_CONFLICT = "node(s) had no available volume zone"
SPREAD_CONSTRAINTS = "node(s) didn't match pod topology spread constraints"
SPREAD_MISSING_LABEL = SPREAD_CONSTRAINTS + " (missing required label)"
POD_AFFINITY = "node(s) didn't match pod affinity rules"
POD_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
NO_NODES = "no nodes available to schedule pods"
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
DRA_NO_CLAIMS = "no new claims to deallocate"


def insufficient(resource: str) -> str:
    return f"Insufficient {resource}"
