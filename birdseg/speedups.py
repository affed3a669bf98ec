"""Speed-ups that go around Keras internals, each isolated here and checked against Keras' own result.

Keras 3 computes BatchNorm, efficientnet's swish and Adam from primitives; TensorFlow has fused kernels for the
same arithmetic (benchmarks/README.md, "Where the time goes"). Keras traces a model's predict function again for a
second batch size, where one trace serves every size. Each replacement below relies on Keras internals that move
between Keras versions (private attributes and methods, the predict function's calling convention), so before its
first use in a process each one computes a small case both ways and compares with Keras' own result. When that
fails (another Keras version, a changed internal), it switches itself off with a one-line warning and Keras' own
computation is used: the numbers are the same, only slower. Training never fails because of a speed-up.
"""
import functools
import warnings

import keras
import numpy as np
import tensorflow as tf


class SpeedupOffWarning(UserWarning):
    """A speed-up did not compute what Keras does on this stack; Keras' own computation is used instead."""


# ---------------------------------------------------------------- BatchNorm


def fused_batch_norm_call(layer):
    """A `call` for a BatchNormalization layer that computes with TensorFlow's fused kernel (one op forward, one
    backward), or None where the layer has features the kernel does not cover (renorm, synchronized, a channel
    axis that is not last).

    The result is Keras' own: same normalisation, same moving-average update (the fused kernel's Bessel-corrected
    batch variance is scaled back to the biased one Keras uses). Only the computation changes, so a saved model is
    a plain Keras model.
    """
    if getattr(layer, "renorm", False) or getattr(layer, "synchronized", False) or layer.axis not in (-1, 3):
        return None
    keras_call = layer.call

    def fused_call(inputs, training=None, mask=None):
        if mask is not None or len(inputs.shape) != 4:
            return keras_call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, "float32")  # as Keras: statistics in float32 even under mixed precision
        channels = x.shape[-1]
        gamma = layer.gamma if layer.scale else tf.ones((channels,))
        beta = layer.beta if layer.center else tf.zeros((channels,))
        if training and layer.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=layer.epsilon,
                                                                 is_training=True)
            count = tf.cast(tf.size(x) // channels, "float32")
            variance = variance * (count - 1.0) / tf.maximum(count, 2.0)  # back to the biased variance
            layer.moving_mean.assign(layer.moving_mean * layer.momentum + mean * (1.0 - layer.momentum))
            layer.moving_variance.assign(layer.moving_variance * layer.momentum + variance * (1.0 - layer.momentum))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, mean=layer.moving_mean,
                                                       variance=layer.moving_variance, epsilon=layer.epsilon,
                                                       is_training=False)
        return tf.cast(y, layer.compute_dtype)

    return fused_call


def check_fused_batch_norm():
    """Keras' BatchNormalization and the fused call on one case: training output, gradients, moving statistics
    and inference output. Raises when they differ."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(0.5, 2.0, (2, 6, 5, 4)), "float32")
    weights = tf.constant(rng.normal(size=(2, 6, 5, 4)), "float32")
    gamma, beta = rng.normal(1.0, 0.3, 4).astype("float32"), rng.normal(0.0, 0.3, 4).astype("float32")
    results = []
    for fused in (False, True):
        layer = keras.layers.BatchNormalization(momentum=0.9, dtype="float32")  # whatever the global policy
        layer.build(x.shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
        if fused:
            call = fused_batch_norm_call(layer)
            if call is None:
                raise AssertionError("the fused kernel does not cover this layer")
            layer.call = call
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * weights)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append([y, *grads, layer.moving_mean, layer.moving_variance, layer(x, training=False)])
    for keras_value, fused_value in zip(*results):
        np.testing.assert_allclose(np.asarray(fused_value), np.asarray(keras_value), rtol=2e-4, atol=2e-5)


# ---------------------------------------------------------------- swish


@tf.custom_gradient
def memory_efficient_swish(x):
    """x * sigmoid(x), the encoder's activation, with a gradient that keeps only x.

    efficientnet's swish is `x * sigmoid(x)` in primitives, so the training graph keeps both x and sigmoid(x)
    of its 52 full-size activations for the backward pass. This one recomputes the sigmoid when the gradient
    arrives, as PyTorch's SiLU does: a training step's peak memory is lower and the step no slower
    (benchmarks/README.md, speed and memory).
    Given to those layers' `call` only: a saved model keeps efficientnet's swish.
    """
    def gradient(upstream):
        with tf.control_dependencies([upstream]):  # else the executor computes it early and keeps it after all
            sigmoid = tf.sigmoid(x)
        return upstream * sigmoid * (1 + x * (1 - sigmoid))

    return x * tf.sigmoid(x), gradient


def is_swish_activation(layer):
    """Whether `layer` is one of efficientnet's swish activations."""
    return isinstance(layer, keras.layers.Activation) and getattr(layer.activation, "__name__", "") == "swish"


def check_memory_efficient_swish():
    """A swish layer as efficientnet makes it, and the same layer given the memory-efficient swish: values and
    gradients on one case. Raises when they differ."""
    from efficientnet import inject_tfkeras_modules
    from efficientnet.model import get_swish

    x = tf.constant(np.linspace(-6, 6, 24).reshape(2, 3, 4), "float32")
    weights = tf.range(1.0, 5.0)
    reference, patched = (keras.layers.Activation(inject_tfkeras_modules(get_swish)(), dtype="float32")
                          for _ in range(2))  # float32 whatever the global policy
    if not is_swish_activation(reference):
        raise AssertionError("efficientnet's activation is no longer named swish")
    patched.call = memory_efficient_swish
    values, grads = [], []
    for layer in (reference, patched):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * weights)
        values.append(np.asarray(y))
        grads.append(np.asarray(tape.gradient(loss, x)))
    np.testing.assert_allclose(values[1], values[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- Adam


@keras.saving.register_keras_serializable(package="birdseg")
class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam, updating each variable with TensorFlow's fused kernel (`ResourceApplyAdam`, one op).

    Keras 3 builds Adam's update from primitives, about 30 ops per variable: for this network's 370 variables
    half of the training graph's 22 000 ops, each run on every step and traced in Python at the start of every
    run (benchmarks/README.md, "Where the time goes"). The kernel computes the same update (tf.keras 2 used it):
    m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2, w <- w - lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps).
    Same variables and config as Adam (only the default name differs), so a checkpoint written with Keras' Adam
    resumes. AMSGrad and sparse gradients keep Keras' computation. Use it through `adam`, which checks it first.
    """

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # The step's scalars once, not once per variable; they travel down in place of the learning rate.
        step = tf.cast(self.iterations + 1, "float32")
        beta_1, beta_2 = tf.cast(self.beta_1, "float32"), tf.cast(self.beta_2, "float32")
        scalars = {"lr": tf.cast(learning_rate, "float32"), "beta1_power": tf.pow(beta_1, step),
                   "beta2_power": tf.pow(beta_2, step), "beta1": beta_1, "beta2": beta_2,
                   "epsilon": tf.cast(self.epsilon, "float32")}
        super()._backend_update_step(grads, trainable_variables, scalars)

    def update_step(self, gradient, variable, learning_rate):
        scalars = learning_rate  # what _backend_update_step sent down
        if self.amsgrad or not isinstance(gradient, tf.Tensor):
            return super().update_step(gradient, variable, scalars["lr"])
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle, v=self._velocities[index].value.handle,
            grad=tf.cast(gradient, variable.dtype),
            **{name: tf.cast(value, variable.dtype) for name, value in scalars.items()})


def adam_trajectory(optimizer, steps=4):
    """Variables and optimizer state after `steps` updates with varied gradients, eagerly and traced, from a
    fixed start (a learning-rate schedule included: its value comes from the optimizer's step)."""
    variables = [keras.Variable(np.linspace(-1, 1, 12, dtype="float32").reshape(3, 4), name="kernel"),
                 keras.Variable(np.full(4, 0.5, dtype="float32"), name="bias")]
    optimizer.build(variables)
    traced_apply = tf.function(lambda grads: optimizer.apply(grads, variables))
    for step in range(steps):
        grads = [tf.sin(v.value * (step + 1)) + 0.1 * step for v in variables]
        optimizer.apply(grads, variables) if step % 2 else traced_apply(grads)
    return [v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables]


def check_fused_adam():
    """Keras' Adam and FusedAdam on one case, with a learning-rate schedule. Raises when they differ."""
    def schedule():
        return keras.optimizers.schedules.CosineDecay(0.0, 10, warmup_target=0.01, warmup_steps=2)

    expected, got = adam_trajectory(keras.optimizers.Adam(schedule())), adam_trajectory(FusedAdam(schedule()))
    if len(expected) != len(got):
        raise AssertionError(f"{len(got)} variables after the updates, Keras' Adam has {len(expected)}")
    for keras_value, fused_value in zip(expected, got):
        np.testing.assert_allclose(fused_value, keras_value, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- prediction


def any_batch_spec(batch):
    """The input type Keras' predict function is traced for: `batch`'s, with a batch dimension of any size."""
    return tf.TensorSpec((None, *batch.shape[1:]), tf.as_dtype(batch.dtype))


def trace_predict_for_any_batch(model, batch):
    """Trace Keras' predict function of `model` once for a batch of any size, before its first call. Keras traces
    it for the first call's batch size and again for the next size (several seconds each on a CPU: a model that
    predicts a figure's 3 images and then batches of 4, or one photo and then two, pays twice). A no-op where the
    function is already made or is not traced (run_eagerly)."""
    if model.predict_function is not None:
        return
    model.make_predict_function()
    if hasattr(model.predict_function, "get_concrete_function"):
        model.predict_function.get_concrete_function([(any_batch_spec(batch),)])  # as predict_on_batch calls it


def check_predict_for_any_batch():
    """A small model's predictions for three batch sizes, through the function traced for any batch and through
    Keras' own. Raises when they differ or when Keras' calls traced the function again."""
    def small_model():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 3))
        return keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs))

    batches = [np.random.default_rng(size).random((size, 8, 8, 3), dtype=np.float32) for size in (1, 3, 2)]
    ours, keras_own = small_model(), small_model()
    trace_predict_for_any_batch(ours, batches[0])
    for batch in batches:
        np.testing.assert_allclose(ours.predict_on_batch(batch), keras_own.predict_on_batch(batch), rtol=1e-6)
    traces = ours.predict_function.experimental_get_tracing_count()
    if traces != 1:
        raise AssertionError(f"Keras' predict function was traced {traces} times for three batch sizes, not once")


def predict_on_batch(model, batch):
    """`model.predict_on_batch(batch)`; for a Keras model, its predict function traced once for every batch size
    where that checks out on this stack (`trace_predict_for_any_batch`). Anything else with a predict_on_batch
    (a stand-in model in a test) is called as it is."""
    if isinstance(model, keras.Model) and speedup_works("predict_for_any_batch"):
        trace_predict_for_any_batch(model, batch)
    return model.predict_on_batch(batch)


# ---------------------------------------------------------------- switching them on


SPEEDUPS = {  # name -> (what it is, for the notice; its check)
    "fused_batch_norm": ("TensorFlow's fused BatchNorm kernel", check_fused_batch_norm),
    "memory_efficient_swish": ("the memory-efficient swish", check_memory_efficient_swish),
    "fused_adam": ("TensorFlow's fused Adam kernel", check_fused_adam),
    "predict_for_any_batch": ("one predict trace for any batch size", check_predict_for_any_batch),
}


@functools.cache
def speedup_works(name):
    """Whether the speed-up `name` computes what Keras does on this stack; checked once per process. When it does
    not, a one-line SpeedupOffWarning says so and the caller keeps Keras' own computation."""
    what, check = SPEEDUPS[name]
    try:
        check()
    except Exception as error:  # noqa: BLE001  (any failure of a speed-up means: use Keras' own computation)
        first_line = (str(error).strip().splitlines() or [""])[0]
        warnings.warn(f"{what} is off with Keras {keras.__version__} / TensorFlow {tf.__version__} "
                      f"({type(error).__name__}: {first_line}); Keras' own computation is used (slower, the same "
                      "numbers)", SpeedupOffWarning, stacklevel=2)
        return False
    return True


def nested_layers(model):
    """Every layer of `model`, the layers of the models inside it included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from nested_layers(layer)


def speed_up_layers(model):
    """Give every BatchNormalization layer of `model` (nested models included) the fused kernel and every swish
    activation the memory-efficient gradient, where each checks out on this stack. Returns how many layers of
    each kind were changed."""
    changed = {"fused_batch_norm": 0, "memory_efficient_swish": 0}
    for layer in nested_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and speedup_works("fused_batch_norm"):
            call = fused_batch_norm_call(layer)
            if call is not None:
                layer.call = call
                changed["fused_batch_norm"] += 1
        elif is_swish_activation(layer) and speedup_works("memory_efficient_swish"):
            layer.call = memory_efficient_swish
            changed["memory_efficient_swish"] += 1
    return changed


def adam(learning_rate):
    """Adam for `model.compile`: FusedAdam where it computes what Keras' Adam does on this stack, else Keras' Adam.
    `learning_rate` is a number or a Keras learning-rate schedule."""
    return FusedAdam(learning_rate) if speedup_works("fused_adam") else keras.optimizers.Adam(learning_rate)
