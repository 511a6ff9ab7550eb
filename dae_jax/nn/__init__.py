"""Networks: ``ops`` (exact fast layer maths), ``batch_norm`` (BatchNorm, one fused pass each way),
``layers`` (layers from spec strings), ``models`` (the ``Autoencoder`` and its presets), ``losses``.
Pure functions and Flax modules; no I/O, no runtime."""
