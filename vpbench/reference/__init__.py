"""Reference code: loading the user's clones of the reference repositories, timing vpbench against them, and
turning the reference codes' checkpoints into vpbench runs.

Owns the one loader of cloned reference code (:mod:`~vpbench.reference.clones`: single files and folders of a
clone imported without running its packages, stand-ins for what they import but never use; OpenSTL's model
classes and the timm it pins: :mod:`~vpbench.reference.openstl_clone`; ``tools/golden`` uses both), the paired
training-step timings against the official SRVP code and OpenSTL's (and the codes built on it), the plain
per-sequence Moving MNIST generator, the weight mappings from the reference codes' models to vpbench's
(:mod:`.mappings`, which the golden parity tests hold), each code's configuration per data set (:mod:`.configs`),
``bench import`` (:mod:`.importing`) and ``bench weights`` (:mod:`.weights`). Reference code is read from the
user's clone, never shipped. May import the harness, metrics, models, datasets, fetch and the foundation modules;
never the report, the diagnostics or the command line.
"""
