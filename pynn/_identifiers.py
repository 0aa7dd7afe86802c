"""Resolving Keras-style identifiers (name, class, instance, config dict) to objects."""


def resolve(identifier, base, names, classes, deserialize, what, allow_callable=False,
            allow_none=False, hint=""):
    """The ``base`` instance that ``identifier`` names.

    ``names`` maps snake_case names and ``classes`` class names to classes; a dict
    goes through ``deserialize``; unknown names raise ``ValueError`` listing the valid
    ones.
    """
    if (allow_none and identifier is None) or isinstance(identifier, base):
        return identifier
    if isinstance(identifier, str):
        cls = names.get(identifier) or classes.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown {what} {identifier!r}; expected one of {sorted(names)}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, base):
        return identifier()
    if allow_callable and callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret {what} identifier: {identifier!r}{hint}")
