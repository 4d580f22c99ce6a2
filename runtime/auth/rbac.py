"""The RBAC authorizer of the built-in API server (kube-apiserver's ``--authorization-mode
RBAC``: ``plugin/pkg/auth/authorizer/rbac`` and ``pkg/registry/rbac/validation``).

Who calls it: the API server's authorization chain (a :class:`~runtime.auth.attributes.Union`
after :class:`~runtime.auth.attributes.PrivilegedGroups`) for every request, the
SelfSubjectRulesReview endpoint (:meth:`RBACAuthorizer.rules_for`), and the escalation
checks of :mod:`runtime.auth.escalation` (:meth:`RBACAuthorizer.policy_rules_for`,
:meth:`RBACAuthorizer.role_ref_rules`, :func:`covers`).

Kubernetes semantics followed:

* ClusterRoleBindings apply in every namespace and to cluster-scoped requests;
  RoleBindings only to requests in their own namespace, their ``roleRef`` naming a Role
  of that namespace or a ClusterRole;
* subjects ``User`` (user name), ``Group`` (one of the user's groups) and
  ``ServiceAccount`` (user ``system:serviceaccount:<ns>:<name>``; a subject without a
  namespace takes the RoleBinding's namespace and never matches in a
  ClusterRoleBinding);
* :func:`rule_allows` is kube's ``RuleAllows``: verbs and apiGroups with ``*``; resources
  with ``*``, ``<resource>/<subresource>`` and ``*/<subresource>``; resourceNames only
  match a request naming one of them (so a rule with resourceNames never allows a
  create without a name, a list, a watch or a deletecollection); nonResourceURLs match
  exactly, as ``*``, or as a prefix when ending in ``*``;
* RBAC only allows: :meth:`RBACAuthorizer.authorize` answers ALLOW with the reason
  ``RBAC: allowed by ClusterRoleBinding "b" of ClusterRole "r" to User "u"`` or
  NO_OPINION (with the role resolution errors as reason, like kube), never DENY;
* :func:`covers` is kube's ``validation.Covers``: the requested rules are broken down
  into one-verb/one-resource/one-name pieces and the pieces no owner rule covers are
  returned.

Speed: bindings are indexed by subject (user name, group, service-account user) and the
rules resolved for a (user, groups, namespace) are cached; both are dropped when the
store commits a write to roles, clusterroles, rolebindings or clusterrolebindings
(:meth:`Store.add_listener`), so authorizing is a dictionary look-up and a short scan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runtime.api.registry import Registry
from runtime.api.store import Event, Store
from runtime.auth.attributes import (
    ALLOW,
    NO_OPINION,
    Attributes,
    Decision,
    NonResourceRule,
    ResourceRule,
    Rules,
)
from runtime.auth.user import SERVICE_ACCOUNT_PREFIX, UserInfo

RBAC_GROUP = "rbac.authorization.k8s.io"

#: The most (user, namespace) resolutions kept before the cache starts over.
_CACHE_LIMIT = 8192


# --- rules --------------------------------------------------------------------------------
def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(v if isinstance(v, str) else str(v) for v in value if v is not None)


@dataclass(frozen=True)
class PolicyRule:
    """One ``rbac.authorization.k8s.io/v1`` PolicyRule, its lists as tuples."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def of(cls, rule: Any) -> PolicyRule:
        """A rule from its JSON form (anything malformed reads as empty lists)."""
        if isinstance(rule, PolicyRule):
            return rule
        if not isinstance(rule, Mapping):
            return cls()
        return cls(
            _strings(rule.get("verbs")),
            _strings(rule.get("apiGroups")),
            _strings(rule.get("resources")),
            _strings(rule.get("resourceNames")),
            _strings(rule.get("nonResourceURLs")),
        )

    def as_dict(self) -> dict[str, list[str]]:
        """The rule as JSON, in the field order kube serializes it."""
        out: dict[str, list[str]] = {"verbs": list(self.verbs)}
        if self.api_groups:
            out["apiGroups"] = list(self.api_groups)
        if self.resources:
            out["resources"] = list(self.resources)
        if self.resource_names:
            out["resourceNames"] = list(self.resource_names)
        if self.non_resource_urls:
            out["nonResourceURLs"] = list(self.non_resource_urls)
        return out


def _verb_matches(rule: PolicyRule, verb: str) -> bool:
    return any(v == "*" or v == verb for v in rule.verbs)


def _group_matches(rule: PolicyRule, group: str) -> bool:
    return any(g == "*" or g == group for g in rule.api_groups)


def _resource_matches(rule: PolicyRule, combined: str, subresource: str) -> bool:
    for resource in rule.resources:
        if resource == "*" or resource == combined:
            return True
        if subresource and resource == "*/" + subresource:
            return True
    return False


def _name_matches(rule: PolicyRule, name: str) -> bool:
    return not rule.resource_names or name in rule.resource_names


def _url_matches(rule: PolicyRule, path: str) -> bool:
    for url in rule.non_resource_urls:
        if url == "*" or url == path:
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def _allows(attrs: Attributes, rule: PolicyRule) -> bool:
    if attrs.resource_request:
        combined = attrs.resource
        if attrs.subresource:
            combined = f"{attrs.resource}/{attrs.subresource}"
        return (
            _verb_matches(rule, attrs.verb)
            and _group_matches(rule, attrs.api_group)
            and _resource_matches(rule, combined, attrs.subresource)
            and _name_matches(rule, attrs.name)
        )
    return _verb_matches(rule, attrs.verb) and _url_matches(rule, attrs.path)


def rule_allows(attrs: Attributes, rule: Mapping[str, Any] | PolicyRule) -> bool:
    """Whether one PolicyRule (JSON form or :class:`PolicyRule`) allows the request
    (kube's ``rbac.RuleAllows``)."""
    return _allows(attrs, PolicyRule.of(rule))


def breakdown_rule(rule: Mapping[str, Any] | PolicyRule) -> list[PolicyRule]:
    """A rule as the equivalent list of rules of one apiGroup, one resource, one verb
    and at most one resourceName (or one nonResourceURL and one verb) — kube's
    ``BreakdownRule``, in its order."""
    r = PolicyRule.of(rule)
    out: list[PolicyRule] = []
    for group in r.api_groups:
        for resource in r.resources:
            for verb in r.verbs:
                if r.resource_names:
                    out += [
                        PolicyRule((verb,), (group,), (resource,), (name,))
                        for name in r.resource_names
                    ]
                else:
                    out.append(PolicyRule((verb,), (group,), (resource,)))
    for url in r.non_resource_urls:
        for verb in r.verbs:
            out.append(PolicyRule((verb,), non_resource_urls=(url,)))
    return out


def _resources_cover(owner: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    if "*" in owner or all(w in owner for w in wanted):
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path:
            return False
        if "*/" + path.split("/", 1)[1] not in owner:
            return False
    return True


def _url_covers(owner: str, path: str) -> bool:
    if owner == path:
        return True
    return owner.endswith("*") and path.startswith(owner.rstrip("*"))


def _rule_covers(owner: PolicyRule, sub: PolicyRule) -> bool:
    verbs = "*" in owner.verbs or all(v in owner.verbs for v in sub.verbs)
    groups = "*" in owner.api_groups or all(g in owner.api_groups for g in sub.api_groups)
    resources = _resources_cover(owner.resources, sub.resources)
    urls = all(
        any(_url_covers(o, p) for o in owner.non_resource_urls) for p in sub.non_resource_urls
    )
    if not sub.resource_names:
        names = not owner.resource_names
    else:
        names = not owner.resource_names or all(
            n in owner.resource_names for n in sub.resource_names
        )
    return verbs and groups and resources and names and urls


def covers(
    owner_rules: Iterable[Mapping[str, Any] | PolicyRule],
    requested_rules: Iterable[Mapping[str, Any] | PolicyRule],
) -> list[PolicyRule]:
    """The pieces of ``requested_rules`` that ``owner_rules`` do not cover (empty when
    they cover all of them) — kube's ``validation.Covers``."""
    owners = [PolicyRule.of(r) for r in owner_rules]
    uncovered: list[PolicyRule] = []
    for requested in requested_rules:
        for sub in breakdown_rule(requested):
            if not any(_rule_covers(owner, sub) for owner in owners):
                uncovered.append(sub)
    return uncovered


def compact_rules(rules: Sequence[PolicyRule]) -> list[PolicyRule]:
    """Rules of one apiGroup and one resource, nothing else, that differ only by verb are
    merged into one (kube's ``CompactRules``, used for escalation messages)."""
    compacted: list[PolicyRule] = []
    simple: dict[tuple[str, str], list[str]] = {}
    for rule in rules:
        if (
            not rule.resource_names
            and not rule.non_resource_urls
            and len(rule.api_groups) == 1
            and len(rule.resources) == 1
        ):
            simple.setdefault((rule.api_groups[0], rule.resources[0]), []).extend(rule.verbs)
        else:
            compacted.append(rule)
    compacted += [PolicyRule(tuple(v), (g,), (r,)) for (g, r), v in simple.items()]
    return compacted


def go_quote(value: str) -> str:
    """A string as Go's ``%q`` prints it (``strconv.Quote``)."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def go_quote_list(values: Iterable[str]) -> str:
    """A string slice as Go's ``%q`` prints it: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def compact_string(rule: PolicyRule) -> str:
    """A rule as kube's escalation messages print it (``rbacv1helpers.CompactString``):
    ``{APIGroups:["*"], Resources:["*"], Verbs:["*"]}``."""
    parts = []
    if rule.api_groups:
        parts.append("APIGroups:" + go_quote_list(rule.api_groups))
    if rule.resources:
        parts.append("Resources:" + go_quote_list(rule.resources))
    if rule.non_resource_urls:
        parts.append("NonResourceURLs:" + go_quote_list(rule.non_resource_urls))
    if rule.resource_names:
        parts.append("ResourceNames:" + go_quote_list(rule.resource_names))
    if rule.verbs:
        parts.append("Verbs:" + go_quote_list(rule.verbs))
    return "{" + ", ".join(parts) + "}"


# --- bindings -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Subject:
    kind: str
    name: str
    namespace: str

    def user_key(self, binding_namespace: str) -> str | None:
        """The index key of the users this subject matches: ``u:<name>`` or ``g:<group>``."""
        if self.kind == "User":
            return "u:" + self.name
        if self.kind == "Group":
            return "g:" + self.name
        if self.kind == "ServiceAccount":
            ns = self.namespace or binding_namespace
            if not ns:
                return None
            return f"u:{SERVICE_ACCOUNT_PREFIX}{ns}:{self.name}"
        return None

    def describe(self, binding_namespace: str) -> str:
        """kube's ``describeSubject`` (a ServiceAccount as ``name/namespace``)."""
        if self.kind == "ServiceAccount":
            ns = self.namespace or binding_namespace
            return f"{self.kind} {go_quote(self.name + '/' + ns)}"
        return f"{self.kind} {go_quote(self.name)}"


@dataclass(frozen=True)
class _Binding:
    order: int
    namespace: str  # "" for a ClusterRoleBinding
    name: str
    role_kind: str
    role_name: str
    subjects: tuple[_Subject, ...]

    def first_applying(self, keys: frozenset[str]) -> _Subject | None:
        for subject in self.subjects:
            key = subject.user_key(self.namespace)
            if key is not None and key in keys:
                return subject
        return None

    def describe(self, subject: _Subject) -> str:
        if self.namespace:
            head = f"RoleBinding {go_quote(self.name + '/' + self.namespace)}"
        else:
            head = f"ClusterRoleBinding {go_quote(self.name)}"
        return (
            f"{head} of {self.role_kind} {go_quote(self.role_name)} "
            f"to {subject.describe(self.namespace)}"
        )


def _binding_of(obj: Mapping[str, Any], namespace: str, order: int) -> _Binding:
    meta = obj.get("metadata") or {}
    ref = obj.get("roleRef") or {}
    subjects = []
    for s in obj.get("subjects") or ():
        if isinstance(s, Mapping):
            subjects.append(
                _Subject(
                    str(s.get("kind") or ""),
                    str(s.get("name") or ""),
                    str(s.get("namespace") or ""),
                )
            )
    return _Binding(
        order,
        namespace,
        str(meta.get("name") or ""),
        str(ref.get("kind") or "") if isinstance(ref, Mapping) else "",
        str(ref.get("name") or "") if isinstance(ref, Mapping) else "",
        tuple(subjects),
    )


class _Index:
    """Bindings by the subject keys they name."""

    def __init__(self) -> None:
        self.by_key: dict[str, list[_Binding]] = {}

    def add(self, binding: _Binding) -> None:
        seen: set[str] = set()
        for subject in binding.subjects:
            key = subject.user_key(binding.namespace)
            if key is not None and key not in seen:
                seen.add(key)
                self.by_key.setdefault(key, []).append(binding)

    def matching(self, keys: frozenset[str]) -> list[tuple[_Binding, _Subject]]:
        found: dict[int, _Binding] = {}
        for key in keys:
            for binding in self.by_key.get(key, ()):
                found[binding.order] = binding
        out = []
        for order in sorted(found):
            binding = found[order]
            subject = binding.first_applying(keys)
            if subject is not None:
                out.append((binding, subject))
        return out


#: What one binding contributes to a user: where from, its rules, or an error.
@dataclass(frozen=True)
class _Grant:
    source: str
    rules: tuple[PolicyRule, ...]
    error: str = ""


def _user_keys(user: UserInfo) -> frozenset[str]:
    return frozenset(["u:" + user.name, *("g:" + g for g in user.groups)])


def _aggregate(errors: Sequence[str]) -> str:
    """Messages as ``utilerrors.NewAggregate(...).Error()`` joins them (deduplicated)."""
    unique = list(dict.fromkeys(errors))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"


class RBACAuthorizer:
    """kube's RBAC authorizer over the store's roles and bindings."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store

        def key(plural: str) -> str:
            info = registry.get(RBAC_GROUP, "v1", plural)
            return info.store_key if info is not None else f"{RBAC_GROUP}/{plural}"

        self._cluster_roles_key = key("clusterroles")
        self._roles_key = key("roles")
        self._crb_key = key("clusterrolebindings")
        self._rb_key = key("rolebindings")
        self._watched = frozenset(
            (self._cluster_roles_key, self._roles_key, self._crb_key, self._rb_key)
        )
        self._fresh = False
        self._cluster_roles: dict[str, tuple[PolicyRule, ...]] = {}
        self._roles: dict[tuple[str, str], tuple[PolicyRule, ...]] = {}
        self._cluster_index = _Index()
        self._namespace_index: dict[str, _Index] = {}
        self._resolved: dict[tuple[frozenset[str], str], tuple[_Grant, ...]] = {}
        store.add_listener(self._on_event)

    # --- cache ----------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        if event.res in self._watched:
            self._fresh = False

    def invalidate(self) -> None:
        """Forget everything resolved (the next request rebuilds from the store)."""
        self._fresh = False

    def _rebuild(self) -> None:
        self._cluster_roles = {
            e.name: tuple(PolicyRule.of(r) for r in (e.obj().get("rules") or ()))
            for e in self.store.iter(self._cluster_roles_key)
        }
        self._roles = {
            (e.namespace, e.name): tuple(PolicyRule.of(r) for r in (e.obj().get("rules") or ()))
            for e in self.store.iter(self._roles_key)
        }
        order = 0
        self._cluster_index = _Index()
        for entry in self.store.iter(self._crb_key):
            self._cluster_index.add(_binding_of(entry.obj(), "", order))
            order += 1
        self._namespace_index = {}
        for entry in self.store.iter(self._rb_key):
            index = self._namespace_index.setdefault(entry.namespace, _Index())
            index.add(_binding_of(entry.obj(), entry.namespace, order))
            order += 1
        self._resolved = {}
        self._fresh = True

    def _ensure(self) -> None:
        if not self._fresh:
            self._rebuild()

    def _role_rules(
        self, kind: str, name: str, namespace: str
    ) -> tuple[tuple[PolicyRule, ...] | None, str]:
        if kind == "ClusterRole":
            rules = self._cluster_roles.get(name)
            if rules is None:
                return None, f'clusterrole.{RBAC_GROUP} "{name}" not found'
            return rules, ""
        if kind == "Role":
            rules = self._roles.get((namespace, name))
            if rules is None:
                return None, f'role.{RBAC_GROUP} "{name}" not found'
            return rules, ""
        return None, f"unsupported role reference kind: {go_quote(kind)}"

    def _grants(self, user: UserInfo, namespace: str) -> tuple[_Grant, ...]:
        self._ensure()
        keys = _user_keys(user)
        cache_key = (keys, namespace)
        found = self._resolved.get(cache_key)
        if found is not None:
            return found
        grants: list[_Grant] = []
        matches = self._cluster_index.matching(keys)
        if namespace:
            index = self._namespace_index.get(namespace)
            if index is not None:
                matches += index.matching(keys)
        for binding, subject in matches:
            rules, error = self._role_rules(binding.role_kind, binding.role_name, namespace)
            if rules is None:
                grants.append(_Grant("", (), error))
            else:
                grants.append(_Grant(binding.describe(subject), rules))
        result = tuple(grants)
        if len(self._resolved) >= _CACHE_LIMIT:
            self._resolved.clear()
        self._resolved[cache_key] = result
        return result

    # --- the Authorizer protocol ------------------------------------------------------------
    def authorize(self, attrs: Attributes) -> Decision:
        errors: list[str] = []
        for grant in self._grants(attrs.user, attrs.namespace):
            if grant.error:
                errors.append(grant.error)
                continue
            for rule in grant.rules:
                if _allows(attrs, rule):
                    return Decision(ALLOW, f"RBAC: allowed by {grant.source}")
        if errors:
            return Decision(NO_OPINION, f"RBAC: {_aggregate(errors)}")
        return Decision(NO_OPINION)

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        rules, errors = self._rules_and_errors(user, namespace)
        out = Rules()
        for rule in rules:
            if rule.resources:
                out.resource_rules.append(
                    ResourceRule(rule.verbs, rule.api_groups, rule.resources, rule.resource_names)
                )
            if rule.non_resource_urls:
                out.non_resource_rules.append(NonResourceRule(rule.verbs, rule.non_resource_urls))
        if errors:
            out.evaluation_error = _aggregate(errors)
        return out

    # --- for the escalation checks ----------------------------------------------------------
    def _rules_and_errors(
        self, user: UserInfo, namespace: str
    ) -> tuple[list[PolicyRule], list[str]]:
        rules: list[PolicyRule] = []
        errors: list[str] = []
        for grant in self._grants(user, namespace):
            if grant.error:
                errors.append(grant.error)
            rules.extend(grant.rules)
        return rules, errors

    def policy_rules_for(
        self, user: UserInfo, namespace: str
    ) -> tuple[list[PolicyRule], list[str]]:
        """Every rule granted to ``user`` cluster-wide plus, when ``namespace`` is set, in
        that namespace, and the role resolution errors met (kube's ``RulesFor``)."""
        return self._rules_and_errors(user, namespace)

    def role_ref_rules(self, kind: str, name: str, namespace: str) -> list[PolicyRule] | None:
        """The rules of a binding's ``roleRef`` (a Role looked up in ``namespace``);
        None when the role does not exist (kube's ``GetRoleReferenceRules``)."""
        self._ensure()
        rules, _ = self._role_rules(kind, name, namespace)
        return None if rules is None else list(rules)
