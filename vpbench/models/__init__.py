"""Model registry: ``vpbench.models.create(name, **overrides)``.

Built-in models register themselves on import, in the row order of the paper's tables.
"""
from vpbench.models.registry import (
    GROUPS,
    ModelEntry,
    create,
    expand,
    get_entry,
    group_members,
    model_names,
    register_model,
)

# Importing registers; the order is the row order of the paper's tables.
from vpbench.models import convlstm  # noqa: E402,F401  isort: skip
from vpbench.models import stlstm  # noqa: E402,F401  isort: skip
from vpbench.models import causallstm  # noqa: E402,F401  isort: skip
from vpbench.models import mim  # noqa: E402,F401  isort: skip
from vpbench.models import convgru  # noqa: E402,F401  isort: skip
from vpbench.models import mimovp  # noqa: E402,F401  isort: skip
from vpbench.models import simvp  # noqa: E402,F401  isort: skip
from vpbench.models import srvp  # noqa: E402,F401  isort: skip
from vpbench.models import persistence  # noqa: E402,F401  isort: skip

__all__ = [
    "GROUPS",
    "ModelEntry",
    "create",
    "expand",
    "get_entry",
    "group_members",
    "model_names",
    "register_model",
]
