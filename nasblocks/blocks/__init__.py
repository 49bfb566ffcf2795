"""Block declarations, one file per family. Importing this package registers every built-in."""

from nasblocks.blocks import (  # noqa: F401  (imported for their registrations)
    attention,
    cell,
    conv,
    core,
    inception,
    merge,
    mobile,
    pooling,
    presets_support,
    residual,
    unet,
)
