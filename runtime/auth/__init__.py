"""Who is calling and what they may do: the built-in API server's authentication,
authorization and the admission steps that depend on the requester.

* :mod:`.user` — :class:`UserInfo`, the identity every request carries;
* :mod:`.attributes` — the request attributes an authorizer decides on, decisions, the
  :class:`Authorizer` protocol and the union of authorizers (kube-apiserver's
  ``authorizer.Attributes`` and ``union``);
* :mod:`.admission` — the admission-plugin protocol the object layer calls with the
  requester on every write.
"""
