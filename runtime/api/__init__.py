"""The object model of the built-in cluster: store, watch hub, admission, patching,
server-side apply and the resource registry. Used by ``runtime.server`` (the HTTP
front) and by in-process components that need direct store access."""
