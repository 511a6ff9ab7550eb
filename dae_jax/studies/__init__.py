"""Studies beyond a run's own score: ``classical`` denoisers, the linear ``probe``, the ``stacked`` DAE, the
``benchmark`` and its ``peers``, and ``files`` (what a study writes). They import the library; the
library never imports them (tests/test_layout.py checks it)."""
