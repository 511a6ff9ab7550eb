"""Data: ``sources`` (the datasets and where each comes from), ``builders`` (their TFDS builders, prepared
on first use), ``idx``/``folders``/``patches`` (this project's TFDS builders), ``image_files`` (reading and
writing image files) and ``pipeline`` (a run's splits and the batches that feed the steps)."""
