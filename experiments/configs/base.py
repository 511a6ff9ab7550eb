"""Base config: every field dae-jax reads, with its default. Setup configs override it."""

import ml_collections
from ml_collections.config_dict import placeholder


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.image_shape = (28, 28, 1)  # (H, W, C) of the dataset's images; the model is built for it
    # Model preset from dae_jax.models.MODELS; other keys override the preset's fields.
    c.model = ml_collections.ConfigDict({"name": "conv32"})
    # Corruption from dae_jax.corruptions.CORRUPTIONS; other keys are its parameters.
    c.corruption = ml_collections.ConfigDict({"name": "gaussian", "sigma": 0.5, "clip": True})
    c.loss = "bce"  # dae_jax.losses.LOSSES: "bce" (sigmoid output) or "mse" (linear output)
    c.optimizer = "adadelta"  # dae_jax.optimizers.OPTIMIZERS
    c.learning_rate = placeholder(float)  # None: the optimizer's Keras default
    c.optimizer_kwargs = ml_collections.ConfigDict()  # e.g. {"rho": 0.95}
    # dae_jax.optimizers.SCHEDULES: constant | cosine | warmup_cosine | exponential | piecewise; the learning
    # rate above is its peak, the run's steps its horizon; kwargs e.g. {"warmup": 0.05} (fractions of the run).
    c.lr_schedule = "constant"
    c.lr_schedule_kwargs = ml_collections.ConfigDict()
    c.batch_size = 128  # global, split evenly over all devices
    # Each device's rows in chunks of this many (gradients summed; same update). None: 16 on CPU
    # for models without BatchNorm, else none; 0: none (dae_jax.training.micro_batch_size).
    c.micro_batch_size = placeholder(int)
    c.compute_dtype = "float32"  # "bfloat16": compute in bf16 on float32 parameters (GPU/TPU; slow on CPU)
    c.eval_batch_size = 1000
    c.num_epochs = 10
    c.max_steps_per_epoch = placeholder(int)  # None: the whole training split
    c.max_eval_examples = placeholder(int)  # None: the whole validation/test split
    c.log_every_steps = 50  # also how often the loss is checked for NaN/inf
    # True: the training images live on the devices, shuffled there, log_every_steps steps per
    # jitted call (dae_jax.device_loop: the accelerator fast path; single process). False: tf.data,
    # one step per batch. None: True where it can be and is faster (training.device_resident).
    c.device_resident = placeholder(bool)
    c.checkpoint_every_epochs = 1
    c.checkpoint_every_steps = placeholder(int)  # also save every N steps (None: only per epoch)
    c.restore_step = placeholder(int)  # resume from this step instead of the latest (later ones are deleted)
    c.keep_checkpoints = 3
    c.num_figure_images = 10
    c.analyses = ()  # dae_jax.analysis.ANALYSES run after training, e.g. ("pca_angles",): <workdir>/<name>.json
    c.smoke = False  # True: shrink to 1 epoch of 2 steps and 256 eval images (dae_jax.training.smoke)
    c.data = ml_collections.ConfigDict(
        {
            "dataset": "mnist",  # mnist | fashion_mnist | rgb_patches (dae_jax.input_pipeline.DATASETS)
            "source": "auto",  # auto | idx | folder | tfds | embedded; which ones a dataset has: its docstring
            "idx_dir": placeholder(str),  # IDX dir; default $DAE_JAX_MNIST_DIR / $DAE_JAX_FASHION_MNIST_DIR
            "image_dir": placeholder(str),  # rgb_patches: a folder of pictures; default $DAE_JAX_IMAGE_DIR
            "data_dir": placeholder(str),  # TFDS data dir; default $TFDS_DATA_DIR or ~/tensorflow_datasets
            "validation_fraction": 0.1,  # held out of TFDS "train": the last 10%, or a random 10% with:
            "validation_split_seed": placeholder(int),  # None: the last fraction; int: a seeded random one
        }
    )
    return c
