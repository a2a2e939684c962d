"""Real videos for the video datasets: decoding with PyAV, the catalogue of a data directory, clips, the frame cache.

Not datasets themselves: ``kth``, ``human36m`` and ``videos`` build on them. May import the foundation modules
(errors, presets) and :mod:`vpbench.datasets.base`; never a model, the metrics or anything above.
"""
