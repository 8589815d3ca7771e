"""From a registry to a frozen plan: validation, ordering, argument binders."""
