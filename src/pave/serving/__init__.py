"""Pave serving: the inference gateway (Open Inference Protocol v2 over REST).

Public API:

- ``pave.serving.gateway.create_gateway(settings, source, options=None)``: the ASGI app;
- ``pave.serving.deployments``: ``Deployment``, ``ModelRef``, the ``DeploymentSource`` protocol and
  its ``StaticDeployments`` / ``JsonFileDeployments`` implementations;
- ``pave.serving.server.run_gateway(settings, source)``: uvicorn around it
  (``python -m pave.serving --deployments FILE``);
- ``pave.serving.inference_log.read_inference_log(directory, start, end)``: the logged requests of a
  time window as a DataFrame (``explode_rows`` for one row per prediction).

Modules: ``protocol`` (OIP codec), ``schema`` (signature -> input binding), ``loading`` (MLflow
models, native predict paths), ``batching``, ``router``, ``runtime`` (one loaded version),
``table`` (deployments sync and swap), ``metrics``, ``inference_log``, ``gateway``, ``server``.
"""
