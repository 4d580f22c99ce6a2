"""The built-in cluster's controllers: one controller per module, level-triggered
(informer caches, keys on a work queue, ``sync(key)``), talking to the API over HTTPS."""
