"""Keras' `fit` on several machines (tf.distribute.MultiWorkerMirroredStrategy), made to work.

With two or more workers, Keras 3's TensorFlow trainer stops in two places (TensorFlow 2.19-2.21 with Keras
3.10-3.15; also for Keras' smallest example, `benchmarks/multi_worker_check.py`):

1. Before the first step, its symbolic build averages the first batch over all workers only to learn the batch's
   shapes; that cross-worker reduce, run eagerly, fails ("Attempt to convert a value (PerReplica...)").
2. After each step, it averages the step's logs over the workers along axis 0, which the scalar loss and metrics
   do not have ("Invalid reduction dimension 0 for input with 0 dimensions").

`allow_multi_worker_fit()` replaces those two Keras functions: the build reads the shapes from this worker's own
part of the batch (an average over workers has the same shapes), and a step's outputs are averaged over the
replicas value by value, as Keras does on one machine. Every strategy that is not multi-worker goes through
Keras' own code. Where Keras' internals are not as expected (another version), it changes nothing and says so.
"""
import importlib
import warnings

import keras
import tensorflow as tf

TRAINER_MODULE = "keras.src.backend.tensorflow.trainer"


def local_batch(strategy, batch):
    """This worker's part of a distributed batch: each per-replica value's first local replica (others: as they are)."""
    return keras.tree.map_structure(
        lambda value: (strategy.experimental_local_results(value)[0]
                       if isinstance(value, tf.distribute.DistributedValues) else value), batch)


def mean_over_replicas(values, strategy):
    """A step's per-replica outputs averaged over all replicas of all workers, value by value: what Keras' "mean"
    reduction gives on one machine."""
    return keras.tree.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)


def keras_trainer():
    """Keras' TensorFlow trainer module if it has the internals the two replacements stand in for, else None."""
    try:
        trainer = importlib.import_module(TRAINER_MODULE)
    except ImportError:
        return None
    needed = [hasattr(trainer, name) for name in ("reduce_per_replica", "_collective_all_reduce_multi_worker")]
    needed += [hasattr(trainer.TensorFlowTrainer, name) for name in ("_maybe_symbolic_build", "_symbolic_build")]
    return trainer if all(needed) else None


def allow_multi_worker_fit():
    """Replace Keras' two multi-worker steps that fail (module docstring); once per process. Returns whether the
    replacement is in place."""
    trainer = keras_trainer()
    if trainer is None:
        warnings.warn(f"Keras {keras.__version__}: its trainer is not as birdseg expects, so its multi-worker fixes "
                      "are off; with several workers, `fit` may stop before the first step", stacklevel=2)
        return False
    if getattr(trainer.reduce_per_replica, "birdseg_multi_worker", False):
        return True
    keras_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return mean_over_replicas(values, strategy)
        return keras_reduce(values, strategy, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return  # as Keras: built when the step function is traced
        if iterator is not None:
            for *_, batches in iterator:  # (step, batches) in Keras 3.10, (first step, last step, batches) in 3.15
                data_batch = local_batch(self.distribute_strategy, next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    reduce_per_replica.birdseg_multi_worker = True
    trainer.reduce_per_replica = reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    return True
