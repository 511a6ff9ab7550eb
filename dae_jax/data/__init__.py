"""Data: ``sources`` (the datasets and where each comes from), ``builders`` (their TFDS builders, prepared
on first use), ``idx``/``folders``/``embedded`` (this project's TFDS builders: IDX files, image folders,
scikit-image's photographs and faces), ``image_files`` (reading and writing image files), ``pipeline``
(a run's splits and in-memory batches), ``stream`` and ``views`` (streamed batches of training views)."""
