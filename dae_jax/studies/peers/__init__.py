"""Peers for the benchmark: dae-jax's models and train step written in PyTorch and in Keras 3 (TensorFlow).

``specs`` reads dae-jax's layer-spec strings and training recipes; ``torch_models`` and
``keras_models`` translate them, so every preset has the same architecture in each framework
(tests/test_benchmark.py checks the parameter counts). Torch and Keras are the optional
``bench`` extra: ``pip install -e ".[bench]"``.
"""
