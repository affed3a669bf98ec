"""Speed-ups around Keras internals: each computes what Keras does (checked on the real U-Net's layers too), and
each switches itself off, with one warning line, where its check fails."""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import recipe_at

from birdseg import model as M
from birdseg import speedups


@pytest.fixture(scope="module")
def unet():
    built, _ = M.build_model(recipe_at(64, 96), None)
    return built


def test_fused_batch_norm_computes_what_keras_batch_norm_does():
    def net():
        inputs = keras.Input((12, 10, 3))
        x = keras.layers.Conv2D(5, 3, padding="same")(inputs)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        return keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(x))

    plain, fused = net(), net()
    fused.set_weights(plain.get_weights())
    assert speedups.speed_up_layers(fused) == {"fused_batch_norm": 1, "memory_efficient_swish": 0}
    x = tf.random.stateless_normal((2, 12, 10, 3), seed=(1, 2)) * 2 + 0.5
    results = []
    for model in (plain, fused):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = tf.reduce_mean(out ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        results.append((out.numpy(), [g.numpy() for g in grads], model.layers[2].moving_variance.numpy(),
                        model.layers[2].moving_mean.numpy(), model(x, training=False).numpy()))
    for keras_value, fused_value in zip(*results):
        for a, b in zip(*(v if isinstance(v, list) else [v] for v in (keras_value, fused_value))):
            np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-5)
    assert fused.layers[2].call.__name__ == "fused_call"


def test_layers_the_fused_kernel_does_not_cover_keep_keras_computation():
    channels_first = keras.layers.BatchNormalization(axis=1)
    synchronized = keras.layers.BatchNormalization(synchronized=True)
    assert speedups.fused_batch_norm_call(channels_first) is None
    assert speedups.fused_batch_norm_call(synchronized) is None


def test_build_model_speeds_up_every_batch_norm_and_swish(unet):
    layers = list(speedups.nested_layers(unet))
    norms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    swishes = [layer for layer in layers if speedups.is_swish_activation(layer)]
    assert len(norms) > 50 and all(layer.call.__name__ == "fused_call" for layer in norms)
    assert len(swishes) == 52 and all(layer.call is speedups.memory_efficient_swish for layer in swishes)


def test_memory_efficient_swish_computes_what_efficientnets_swish_does(unet, tmp_path):
    swish = next(layer for layer in speedups.nested_layers(unet) if speedups.is_swish_activation(layer))
    x = tf.random.stateless_normal((2, 5, 7, 3), seed=(3, 4)) * 4
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, efficientnets = speedups.memory_efficient_swish(x), swish.activation(x)
        weighted = [tf.reduce_sum(y * tf.range(1.0, 4.0)) for y in (ours, efficientnets)]
    np.testing.assert_allclose(ours.numpy(), efficientnets.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(weighted[0], x).numpy(), tape.gradient(weighted[1], x).numpy(),
                               rtol=1e-5, atol=1e-6)

    @tf.function
    def swish_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = speedups.memory_efficient_swish(x)
        return tape.gradient(y, x)

    graph = swish_gradient.get_concrete_function(tf.TensorSpec((2, 3))).graph
    backward_sigmoids = [op for op in graph.get_operations() if op.type == "Sigmoid" and op.control_inputs]
    assert len(backward_sigmoids) == 1  # recomputed when the gradient arrives, not kept from the forward pass
    unet.save(tmp_path / "model.keras")  # the saved layer is efficientnet's plain swish
    reloaded = M.load_model(tmp_path / "model.keras")
    assert not any(layer.call is speedups.memory_efficient_swish for layer in speedups.nested_layers(reloaded))


@pytest.mark.parametrize("amsgrad", [False, True])
def test_fused_adam_updates_what_keras_adam_does(amsgrad):
    keras_adam = keras.optimizers.Adam(0.01, amsgrad=amsgrad)
    fused_adam = speedups.FusedAdam(0.01, amsgrad=amsgrad)
    expected, got = speedups.adam_trajectory(keras_adam), speedups.adam_trajectory(fused_adam)
    for keras_value, fused_value in zip(expected, got, strict=True):
        np.testing.assert_allclose(fused_value, keras_value, rtol=1e-5, atol=1e-7)
    assert {**fused_adam.get_config(), "name": "adam"} == {**keras_adam.get_config(), "name": "adam"}


def test_fused_adam_resumes_from_a_checkpoint_written_with_keras_adam(tmp_path):
    def tiny_model(optimizer):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer=optimizer, loss="mse")
        model.optimizer.build(model.trainable_variables)
        return model

    before = tiny_model(keras.optimizers.Adam(0.01))
    before.train_on_batch(np.ones((4, 3)), np.zeros((4, 2)))
    before.save_weights(tmp_path / "epoch_1.weights.h5")
    after = tiny_model(speedups.FusedAdam(0.01))
    after.load_weights(tmp_path / "epoch_1.weights.h5")
    assert int(after.optimizer.iterations) == 1
    for saved, loaded in zip(before.optimizer.variables, after.optimizer.variables, strict=True):
        np.testing.assert_array_equal(loaded.numpy(), saved.numpy())


def test_fused_adam_is_one_op_per_variable_in_the_training_graph(unet):
    variables = unet.trainable_variables
    optimizer = speedups.FusedAdam()
    optimizer.build(variables)
    apply = tf.function(lambda grads: optimizer.apply(grads, variables))
    graph = apply.get_concrete_function([tf.TensorSpec(v.shape) for v in variables]).graph
    op_types = [op.type for op in graph.get_operations() if op.type != "Placeholder"]  # gradients, handles
    assert op_types.count("ResourceApplyAdam") == len(variables) > 300
    assert len(op_types) < 3 * len(variables)  # Keras' Adam: about 30 per variable


@pytest.mark.parametrize("name", sorted(speedups.SPEEDUPS))
def test_each_check_passes_on_the_pinned_stack_and_fails_when_the_result_differs(name, monkeypatch):
    """The checks can fail: the same check with the speed-up computing something else raises."""
    speedups.SPEEDUPS[name][1]()  # passes as it is
    try:  # also under mixed precision, as on a GPU, where the notebook sets the policy before building
        keras.mixed_precision.set_global_policy("mixed_float16")
        speedups.SPEEDUPS[name][1]()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    wrong = {
        "fused_batch_norm": ("fused_batch_norm_call", lambda layer: lambda inputs, **kwargs: inputs * 1.01),
        "memory_efficient_swish": ("memory_efficient_swish", lambda x: x * tf.sigmoid(1.01 * x)),
        "fused_adam": ("FusedAdam", lambda rate: keras.optimizers.Adam(rate, beta_1=0.8)),
        "predict_for_any_batch": ("any_batch_spec", lambda batch: tf.TensorSpec(batch.shape, batch.dtype)),
    }[name]
    monkeypatch.setattr(speedups, *wrong)
    with pytest.raises(AssertionError):
        speedups.SPEEDUPS[name][1]()


def test_a_model_predicting_several_batch_sizes_is_traced_once_and_predicts_what_keras_does():
    model, twin = (M.build_model(recipe_at(32, 64), None)[0] for _ in range(2))
    twin.set_weights(model.get_weights())
    rng = np.random.default_rng(0)
    for size in (3, 4, 1):  # a prediction figure's images, a batch of photos, one photo
        batch = rng.random((size, 32, 64, 3), dtype=np.float32)
        np.testing.assert_allclose(speedups.predict_on_batch(model, batch), twin.predict_on_batch(batch), atol=1e-6)
    assert model.predict_function.experimental_get_tracing_count() == 1
    assert twin.predict_function.experimental_get_tracing_count() == 2  # Keras alone: again for the second size


@pytest.fixture
def all_checks_failing(monkeypatch):
    """As on a Keras version whose internals moved: every check fails, as a missing attribute would make it."""
    def moved():
        raise AttributeError("'BatchNormalization' object has no attribute 'renorm'")

    monkeypatch.setattr(speedups, "SPEEDUPS", {name: (what, moved) for name, (what, _) in speedups.SPEEDUPS.items()})
    speedups.speedup_works.cache_clear()
    yield
    speedups.speedup_works.cache_clear()


def test_a_failing_speedup_switches_itself_off_with_one_line_and_training_still_works(all_checks_failing):
    from efficientnet import inject_tfkeras_modules
    from efficientnet.model import get_swish

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built, _ = M.build_model(recipe_at(32, 32), None)
        M.compile_model(built, 1e-3, "bce_jaccard")
    notices = [str(w.message) for w in caught if issubclass(w.category, speedups.SpeedupOffWarning)]
    assert len(notices) == 3 and all("\n" not in notice for notice in notices)
    assert "TensorFlow's fused BatchNorm kernel is off with Keras" in notices[0]
    assert "AttributeError: 'BatchNormalization' object has no attribute 'renorm'" in notices[0]
    layers = list(speedups.nested_layers(built))
    assert not any(getattr(layer.call, "__name__", "") == "fused_call" for layer in layers)
    assert not any(layer.call is speedups.memory_efficient_swish for layer in layers)
    assert type(built.optimizer) is keras.optimizers.Adam
    # A training step on a small network of the same layers, as they now are: Keras' own.
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation(inject_tfkeras_modules(get_swish)())(x)
    small = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(x))
    assert speedups.speed_up_layers(small) == {"fused_batch_norm": 0, "memory_efficient_swish": 0}
    M.compile_model(small, 1e-3, "bce_jaccard")
    rng = np.random.default_rng(0)
    loss = small.train_on_batch(rng.random((2, 16, 16, 3), dtype=np.float32),
                                (rng.random((2, 16, 16, 1)) > 0.5).astype("float32"))
    assert np.isfinite(loss).all() and int(small.optimizer.iterations) == 1
