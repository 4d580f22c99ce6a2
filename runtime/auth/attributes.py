"""Authorization requests and decisions (kube-apiserver's ``authorizer`` package).

:class:`Attributes` is what an authorizer decides on: the user, the verb, and either a
resource (group, resource, subresource, namespace, name) or a non-resource path.
An :class:`Authorizer` answers ALLOW, DENY or NO_OPINION with a reason; :class:`Union`
asks each in order and the first that is not NO_OPINION decides (kube-apiserver's
``union.New``); no opinion from all of them is a denial.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from runtime.auth.user import UserInfo

ALLOW: Literal["allow"] = "allow"
DENY: Literal["deny"] = "deny"
NO_OPINION: Literal["no-opinion"] = "no-opinion"
Verdict = Literal["allow", "deny", "no-opinion"]


@dataclass(frozen=True)
class Attributes:
    """One request as an authorizer sees it (kube's ``AttributesRecord``)."""

    user: UserInfo
    verb: str
    resource_request: bool = True
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    #: The request's ``fieldSelector`` (the Node authorizer scopes a node's pod lists
    #: to ``spec.nodeName=<node>``, as kube 1.35's AuthorizeNodeWithSelectors).
    field_selector: str = ""


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.verdict == ALLOW


@dataclass(frozen=True)
class ResourceRule:
    """A rule as SelfSubjectRulesReview reports it."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, list[str]]:
        out = {"verbs": list(self.verbs)}
        if self.api_groups:
            out["apiGroups"] = list(self.api_groups)
        if self.resources:
            out["resources"] = list(self.resources)
        if self.resource_names:
            out["resourceNames"] = list(self.resource_names)
        return out


@dataclass(frozen=True)
class NonResourceRule:
    verbs: tuple[str, ...]
    non_resource_urls: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, list[str]]:
        out = {"verbs": list(self.verbs)}
        if self.non_resource_urls:
            out["nonResourceURLs"] = list(self.non_resource_urls)
        return out


@dataclass
class Rules:
    """What a user may do in a namespace (SelfSubjectRulesReview's status)."""

    resource_rules: list[ResourceRule] = field(default_factory=list)
    non_resource_rules: list[NonResourceRule] = field(default_factory=list)
    incomplete: bool = False
    evaluation_error: str = ""


class Authorizer(Protocol):
    def authorize(self, attrs: Attributes) -> Decision: ...

    def rules_for(self, user: UserInfo, namespace: str) -> Rules: ...


class Union:
    """Authorizers asked in order; the first ALLOW or DENY decides."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = list(authorizers)

    def authorize(self, attrs: Attributes) -> Decision:
        reasons = []
        for authorizer in self.authorizers:
            decision = authorizer.authorize(attrs)
            if decision.verdict != NO_OPINION:
                return decision
            if decision.reason:
                reasons.append(decision.reason)
        return Decision(NO_OPINION, ", ".join(reasons))

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        out = Rules()
        errors = []
        for authorizer in self.authorizers:
            rules = authorizer.rules_for(user, namespace)
            out.resource_rules += rules.resource_rules
            out.non_resource_rules += rules.non_resource_rules
            out.incomplete = out.incomplete or rules.incomplete
            if rules.evaluation_error:
                errors.append(rules.evaluation_error)
        out.evaluation_error = ", ".join(errors)
        return out


class PrivilegedGroups:
    """Members of ``system:masters`` may do anything (kube-apiserver's
    ``authorizerfactory.NewPrivilegedGroups``, asked before RBAC)."""

    def __init__(self, groups: Sequence[str]) -> None:
        self.groups = frozenset(groups)

    def authorize(self, attrs: Attributes) -> Decision:
        if self.groups.intersection(attrs.user.groups):
            return Decision(ALLOW)
        return Decision(NO_OPINION)

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        if self.groups.intersection(user.groups):
            return Rules([ResourceRule(("*",), ("*",), ("*",))], [NonResourceRule(("*",), ("*",))])
        return Rules()
