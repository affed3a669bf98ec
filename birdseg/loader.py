"""Dataset and Dataloader: a split's pairs read from disk on access, augmented with a seed per (run seed, epoch,
index) and batched for Keras, so a resumed run sees the same batches."""
import hashlib
import math
import threading
from pathlib import Path

import keras
import numpy as np

from birdseg.augment import get_validation_augmentation, paste_birds
from birdseg.errors import DatasetError
from birdseg.images import read_mask, read_pair
from birdseg.pairs import find_pairs
from birdseg.randomised import STYLES
from birdseg.recipe import check_choice, check_copy_paste


def sample_seed(*parts):
    """A stable 32-bit seed from any parts (run seed, epoch, index), the same in every process."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little")


class Dataset:
    """Image/mask pairs of one split, read from disk on access (nothing is held in memory).

    `dataset[i]` returns (image float32 HxWx3 in [0, 1], mask float32 HxWx1 in {0, 1}) after the
    augmentation; `dataset.get(i, seed)` makes the random augmentation reproducible per sample. With `copy_paste`
    p > 0, a share p of the samples also get the birds of another sample of the split pasted in (`paste_birds`).
    """

    def __init__(self, source, augmentation=None, max_images=None, copy_paste=0.0):
        pairs = find_pairs(source) if isinstance(source, (str, Path)) else list(source)
        self.pairs = pairs[:max_images] if max_images else pairs
        self.augmentation = augmentation
        self.copy_paste = check_copy_paste(copy_paste)
        self._lock = threading.Lock()  # albumentations' generators are shared state

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        return self.get(index)

    def get(self, index, seed=None):
        image, mask = self._augmented(index, seed)
        if self.copy_paste:
            rng = np.random.default_rng(None if seed is None else sample_seed(seed, "copy-paste"))
            if rng.random() < self.copy_paste:
                donor = int(rng.integers(len(self)))
                donor_seed = None if seed is None else sample_seed(seed, "donor")
                image, mask = paste_birds(image, mask, *self._augmented(donor, donor_seed), rng)
        return image.astype(np.float32) / 255.0, mask[..., None].astype(np.float32)

    def pair(self, index, seed=None):
        """Sample `index` before augmentation: (image uint8 HxWx3, mask uint8 HxW {0, 1})."""
        return read_pair(*self.pairs[index])

    def mask(self, index):
        """Sample `index`'s mask before augmentation, without its image."""
        return read_mask(self.pairs[index][1])

    def _augmented(self, index, seed):
        image, mask = self.pair(index, seed)
        if self.augmentation is not None:
            with self._lock:
                if seed is not None:
                    self.augmentation.set_random_seed(seed)
                sample = self.augmentation(image=image, mask=mask)
            image, mask = sample["image"], sample["mask"]
        return image, mask

    def preview_indices(self, count=3):
        """`count` indices spread over the split for a figure that shows how the model is doing: in each of
        `count` equal parts, the first image whose mask holds a bird (a bird-less image shows nothing to find),
        or the part's first image where none does. Reads masks only until each part has its image."""
        if not len(self):
            return []
        parts = np.array_split(np.arange(len(self)), min(count, len(self)))
        chosen = []
        for part in parts:
            with_bird = (int(index) for index in part if self.mask(index).any())
            chosen.append(next(with_bird, int(part[0])))
        return chosen


class DrawnDataset(Dataset):
    """`count` training pairs drawn anew for every sample seed by a synthetic generator (`randomised.STYLES`):
    each (run seed, epoch, index) has its own drawing, so an epoch never repeats the last one's images and a resumed
    run draws what an uninterrupted one would. Without a seed, sample `index` is the same drawing every time."""

    def __init__(self, style, count, augmentation=None, copy_paste=0.0):
        check_choice("style", style, tuple(STYLES))
        super().__init__([], augmentation, copy_paste=copy_paste)
        self.style, self.count = style, int(count)

    def __len__(self):
        return self.count

    def pair(self, index, seed=None):
        rng = np.random.default_rng(sample_seed("drawing", index) if seed is None else sample_seed(seed, "drawing"))
        image, mask = STYLES[self.style](rng)
        return image, (mask > 0).astype(np.uint8)

    def mask(self, index):
        return self.pair(index)[1]


class Dataloader(keras.utils.PyDataset):
    """Batches a Dataset for Keras. With `shuffle`, each epoch has its own order drawn from (seed, epoch),
    and each sample's augmentation is seeded from (seed, epoch, index): a resumed run sees the same batches."""

    def __init__(self, dataset, batch_size=1, shuffle=False, seed=0, workers=1, use_multiprocessing=False):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing)
        if len(dataset) == 0:
            raise DatasetError("cannot batch an empty dataset")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed

    def order(self, epoch):
        order = np.arange(len(self.dataset))
        if self.shuffle:
            np.random.default_rng(sample_seed(self.seed, "order", epoch)).shuffle(order)
        return order

    def batch(self, epoch, batch_index):
        """Batch `batch_index` of epoch `epoch`: (images, masks), a pure function of its arguments."""
        indices = self.order(epoch)[batch_index * self.batch_size : (batch_index + 1) * self.batch_size]
        samples = [self.dataset.get(int(i), seed=sample_seed(self.seed, epoch, int(i))) for i in indices]
        images, masks = zip(*samples)
        return np.stack(images), np.stack(masks)

    def __len__(self):
        return math.ceil(len(self.dataset) / self.batch_size)

    def __getitem__(self, batch_index):
        return self.batch(0, batch_index)  # indexed (validation data, never reshuffled): the first epoch's batches

    def stream(self, start_epoch=0):
        """Endless batches for `model.fit(..., steps_per_epoch=len(loader))`, from `start_epoch` on."""
        return EpochStream(self, start_epoch, workers=self.workers, use_multiprocessing=self.use_multiprocessing)


class EpochStream(keras.utils.PyDataset):
    """Batch i is batch i % n of epoch start + i // n.

    Keras announces epochs to a PyDataset at moments that do not match what tf.data has already
    prefetched, so the epoch is derived from the batch index instead: the order cannot drift.
    """

    def __init__(self, loader, start_epoch=0, **kwargs):
        super().__init__(**kwargs)
        self.loader, self.start_epoch = loader, start_epoch

    @property
    def num_batches(self):
        return None  # endless: Keras keeps one iterator across epochs

    def __getitem__(self, index):
        per_epoch = len(self.loader)
        return self.loader.batch(self.start_epoch + index // per_epoch, index % per_epoch)


def load_split(data_dir, split, height, width, max_images=None, augmentation=None):
    """The Dataset of one split, resized to (height, width) by `get_validation_augmentation` unless another
    `augmentation` is given."""
    augmentation = augmentation or get_validation_augmentation(height, width)
    return Dataset(Path(data_dir) / split, augmentation, max_images)
