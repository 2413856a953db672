"""Networks (plain ``nn.Module``s, no Lightning), their registry and the one builder.

Importing a network module registers its names (``model=<name>`` on the command line) with the
facts the network carries (:class:`~ser_lightning.models.registry.ModelInfo`); the registry imports a family's
module when one of its names is first asked for (:data:`~ser_lightning.models.registry.FAMILIES`), so importing
this package loads neither timm nor transformers.
:func:`build_network` turns ``model`` + ``features`` settings into frontend + network.
"""

from ser_lightning.models.builder import (
    NON_NETWORK_KEYS,
    build_network,
    fit_geometry,
    frontend_settings,
)
from ser_lightning.models.registry import (
    ModelInfo,
    build_model,
    is_model,
    list_models,
    model_info,
    register_model,
    register_model_deprecations,
)

#: Names used before the networks were named after their architectures (report numbers).
register_model_deprecations({
    "report000_cnn": "residual_cnn",
    "report000_bilstm": "attentive_bilstm",
    "report000_transformer": "cls_transformer",
    "report000_ensemble": "joint_ensemble",
    "report001_cnn": "plain_cnn",
    "report001_parallel_cnn": "parallel_cnn",
    "report001_cnn_transformer": "cnn_transformer",
    "report002_cnn": "mfcc_cnn",
})

__all__ = [
    "NON_NETWORK_KEYS", "ModelInfo", "build_model", "build_network", "fit_geometry", "frontend_settings", "is_model", "list_models",
    "model_info", "register_model", "register_model_deprecations",
]
