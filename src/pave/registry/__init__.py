"""Pave registry: model versions with lineage tags, aliases, promotion gates.

- :mod:`pave.registry.gates`: ``evaluate_gates`` -> ``GateResult`` per gate;
- :mod:`pave.registry.versions`: ``register_version``, ``champion_metrics``, ``set_alias``,
  ``list_model_versions``, ``get_version``;
- :mod:`pave.registry.flavors`: logging a model with its flavor, signature and requirements.
"""
