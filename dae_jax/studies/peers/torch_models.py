"""PyTorch peer: dae-jax's layer specs as ``torch.nn`` modules, and a train step that does what dae-jax's does.

The step takes a clean uint8 batch [N, C, H, W], converts it to float in [0, 1], draws its own
Gaussian noise (clipped), runs the model, takes the loss against the clean batch (BCE from
logits or MSE) and applies the optimizer with dae-jax's hyperparameters (Keras defaults).
Layers are NCHW (or channels_last in memory); 'same' padding is XLA's: the extra row/column of
an odd total goes at the end.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dae_jax.studies.peers.specs import Layer, Recipe, forward, noisy_batches

# Configurations the benchmark can time (--peers torch:<name>); DEFAULT_VARIANT is what
# `--peers torch` uses. threads None: one per core. channels_last is about 2x NCHW on the 2-core
# CPU; torch.compile (inductor) was slower here (results/benchmarks/peer_variants.md). On a CPU
# that other processes also load, torch's OpenMP threads wait for each other at every op and
# one thread is then several times faster than two, so the benchmark runs both.
VARIANTS = {
    "eager": {"channels_last": False, "compile": False, "threads": None},
    "channels_last": {"channels_last": True, "compile": False, "threads": None},
    "channels_last_1thread": {"channels_last": True, "compile": False, "threads": 1},
    "compile": {"channels_last": True, "compile": True, "threads": None},  # torch.compile (inductor) of the model
}
DEFAULT_VARIANT = "channels_last"


def version() -> str:
    return torch.__version__


class SamePad2d(nn.Module):
    """Zero padding to XLA 'SAME' for a strided conv: out = ceil(in / stride), the odd pixel padded at the end."""

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def _pads(self, size: int) -> tuple[int, int]:
        total = max((-(-size // self.stride) - 1) * self.stride + self.kernel - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top, bottom), (left, right) = self._pads(x.shape[2]), self._pads(x.shape[3])
        return F.pad(x, (left, right, top, bottom))


class Reshape(nn.Module):
    """dae-jax's "reshape HxWxC" in NCHW: [N, H*W*C] -> [N, C, H, W]."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = (shape[-1], *shape[:-1]) if len(shape) == 3 else shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


class ChannelDense(nn.Module):
    """Dense on the channel axis of an NCHW tensor (dae-jax's "dense" acts on the last axis of NHWC)."""

    def __init__(self, units: int):
        super().__init__()
        self.linear = nn.LazyLinear(units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) if x.ndim == 2 else self.linear(x.movedim(1, -1)).movedim(-1, 1)


def _conv(layer: Layer) -> list[nn.Module]:
    k, s = layer.kernel, layer.stride
    if layer.op == "tconv":
        # Output size: 'same' in * s, 'valid' (in - 1) * s + k, as in Flax/Keras ConvTranspose.
        pad = -(-(k - s) // 2) if layer.same else 0
        extra = 2 * pad - (k - s) if layer.same else 0
        return [nn.LazyConvTranspose2d(layer.size, k, s, padding=pad, output_padding=extra)]
    if not layer.same:
        return [nn.LazyConv2d(layer.size, k, s)]
    if s == 1 and k % 2:
        return [nn.LazyConv2d(layer.size, k, padding=k // 2)]  # symmetric: torch's own padding
    return [SamePad2d(k, s), nn.LazyConv2d(layer.size, k, s)]


def _modules(layer: Layer) -> list[nn.Module]:
    if layer.op in ("conv", "tconv"):
        mods = _conv(layer)
    elif layer.op == "dense":
        mods = [ChannelDense(layer.size)]
    elif layer.op == "bn":
        mods = [nn.LazyBatchNorm2d(eps=1e-3, momentum=0.01)]  # Keras momentum 0.99 = torch 0.01
    elif layer.op == "pool":
        mods = [nn.MaxPool2d(2, 2, ceil_mode=layer.same)]
    elif layer.op == "up":
        mods = [nn.Upsample(scale_factor=2, mode="nearest")]
    elif layer.op == "resize":
        mods = [nn.Upsample(size=(layer.size, layer.size), mode="nearest")]
    elif layer.op == "flatten":
        mods = [nn.Flatten()]
    elif layer.op == "reshape":
        mods = [Reshape(layer.shape)]
    elif layer.op in ("save", "add"):
        mods = []  # Net.forward does these (specs.forward)
    else:
        raise ValueError(f"torch peer: no translation for layer op {layer.op!r}.")
    return [*mods, nn.ReLU()] if layer.relu else mods


class Net(nn.Module):
    """The autoencoder: one nn.Sequential per layer spec (empty for "save"/"add"), walked by ``specs.forward``.

    Not one nn.Sequential, which cannot keep the activations that skip connections add later. Memory
    formats pass through: a channels_last activation plus a saved channels_last one stays channels_last.
    """

    def __init__(self, layers: tuple[Layer, ...]):
        super().__init__()
        self.layers = layers
        self.blocks = nn.ModuleList(nn.Sequential(*_modules(layer)) for layer in layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward(self.layers, x, lambda i, y: self.blocks[i](y), torch.add)


def build(recipe: Recipe) -> Net:
    """The preset's autoencoder, parameters materialised for ``recipe.image_shape``.

    A "zero" conv gets a zero kernel and a zero bias (torch draws its biases at random; dae-jax's start at
    0), so that, as in dae-jax, a residual branch ending in it starts as a no-op.
    """
    net = Net(recipe.layers)
    h, w, c = recipe.image_shape
    net.eval()
    with torch.no_grad():
        net(torch.zeros(2, c, h, w))  # materialises the lazy layers
        for layer, block in zip(recipe.layers, net.blocks, strict=True):
            for conv in (m for m in block if layer.zero and isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))):
                conv.weight.zero_()
                conv.bias.zero_()
    return net.train()


def param_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def make_optimizer(recipe: Recipe, params) -> torch.optim.Optimizer:
    h = recipe.hyperparameters
    if recipe.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=h["learning_rate"], rho=h["rho"], eps=h["eps"])
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=h["learning_rate"], betas=(h["b1"], h["b2"]), eps=h["eps"])
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=h["learning_rate"], momentum=h["momentum"] or 0.0, nesterov=h["nesterov"])
    raise ValueError(f"torch peer: no translation for optimizer {recipe.optimizer!r}.")


def _model(recipe: Recipe, variant: str) -> tuple[nn.Module, nn.Module, torch.memory_format, str]:
    """(the preset's net, the module to call: the net or its torch.compile, the memory format, a description),
    with torch's threads and seed set as ``variant`` says."""
    if variant not in VARIANTS:
        raise ValueError(f"Unknown torch variant {variant!r}; choose one of {sorted(VARIANTS)}.")
    options = VARIANTS[variant]
    torch.set_num_threads(options["threads"] or os.cpu_count() or 1)
    torch.manual_seed(0)
    memory_format = torch.channels_last if options["channels_last"] else torch.contiguous_format
    net = build(recipe).to(memory_format=memory_format)
    knobs = [k for k in ("channels_last", "compile") if options[k]] or ["eager NCHW"]
    description = f"torch {version()}, {torch.get_num_threads()} threads, {' + '.join(knobs)}"
    return net, torch.compile(net) if options["compile"] else net, memory_format, description


class Runner:
    """Times ``steps`` train steps of ``recipe`` on batches of ``images`` (uint8 [N, H, W, C], N >= batch_size)."""

    DEFAULT_VARIANT = DEFAULT_VARIANT

    def __init__(self, recipe: Recipe, batch_size: int, images: np.ndarray, variant: str = DEFAULT_VARIANT):
        net, self.model, self.format, self.description = _model(recipe, variant)
        self.params = param_count(net)
        self.optimizer = make_optimizer(recipe, net.parameters())
        self.sigma, self.loss = recipe.sigma, recipe.loss
        nchw = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        self.batches = [
            nchw[i : i + batch_size].contiguous(memory_format=self.format)
            for i in range(0, len(nchw) - batch_size + 1, batch_size)
        ]

    def step(self, images: torch.Tensor) -> torch.Tensor:
        clean = images.float().div_(255.0)
        noisy = clean if self.sigma is None else (clean + self.sigma * torch.randn_like(clean)).clamp_(0.0, 1.0)
        out = self.model(noisy)
        loss = F.binary_cross_entropy_with_logits(out, clean) if self.loss == "bce" else F.mse_loss(out, clean)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss

    def run(self, steps: int) -> float:
        """Seconds for ``steps`` steps (torch on CPU is synchronous)."""
        start = time.perf_counter()
        for i in range(steps):
            loss = self.step(self.batches[i % len(self.batches)])
        loss.item()
        return time.perf_counter() - start


class Predictor:
    """Times denoising ``steps`` batches (``specs.noisy_batches`` of ``images``) under ``torch.inference_mode``:
    numpy float32 NHWC in [0, 1] in, numpy NHWC in [0, 1] out (the sigmoid of a BCE model's logits included)."""

    DEFAULT_VARIANT = DEFAULT_VARIANT

    def __init__(self, recipe: Recipe, batch_size: int, images: np.ndarray, variant: str = DEFAULT_VARIANT):
        net, self.model, self.format, description = _model(recipe, variant)
        net.eval()
        self.params = param_count(net)
        self.activation = torch.sigmoid if recipe.loss == "bce" else torch.nn.Identity()
        self.batches = noisy_batches(images, batch_size, recipe.sigma)
        self.description = f"{description}, inference_mode"

    def run(self, steps: int) -> float:
        """Seconds to denoise ``steps`` batches, each given back as a numpy array."""
        start = time.perf_counter()
        with torch.inference_mode():
            for i in range(steps):
                # NHWC memory is NCHW in channels_last: the permute is free, and contiguous() copies only for NCHW.
                x = torch.from_numpy(self.batches[i % len(self.batches)]).permute(0, 3, 1, 2)
                out = self.activation(self.model(x.contiguous(memory_format=self.format)))
                out.permute(0, 2, 3, 1).numpy()
        return time.perf_counter() - start
