"""Diagnostics: the commands that look at the suite and this machine rather than train a benchmark run.

Owns ``bench speed`` (timings against the plain and the reference implementations), ``bench profile``
(params, FLOPs, latency, memory), ``bench gpu-check``, ``bench check-model``, ``bench data check``, ``bench data
download`` (the published data sets through :mod:`vpbench.fetch`, then checked) and ``bench list``. Every timing goes through the one timer of :mod:`vpbench.metrics.cost`. May import every
package below the command line (the harness, the launchers, the reference code loaders, the metrics, the
models and datasets); nothing but :mod:`vpbench.cli` imports it.
"""
