import hashlib
import zipfile

import numpy as np
from PIL import Image

from birdseg import images, pairs, synthetic
from birdseg.randomised import EMBEDDED_STYLE, STYLES


def test_same_seed_same_zip_bytes(tmp_path):
    counts = {"train": 2, "val": 1, "test": 1}
    a = synthetic.write_zip(tmp_path / "a.zip", counts, seed=3, top="birds_splitted")
    b = synthetic.write_zip(tmp_path / "b.zip", counts, seed=3, top="birds_splitted")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    with zipfile.ZipFile(a) as zf:
        names = zf.namelist()
    assert "birds_splitted/SYNTHETIC.txt" in names
    assert "birds_splitted/train/images/train_0000.jpg" in names and "birds_splitted/test/mask/test_0000.png" in names


def test_layout_masks_and_variety(tmp_path):
    root = tmp_path / "birds"
    synthetic.write_dataset(root, {"train": 12, "val": 1, "test": 1}, seed=4)
    sizes, fractions = set(), []
    for image_path, mask_path in pairs.find_pairs(root / "train"):
        image, mask = images.read_image(image_path), np.asarray(Image.open(mask_path))
        assert set(np.unique(mask)) <= {0, 255}
        assert image.shape[:2] == mask.shape
        sizes.add(image.shape[:2])
        fractions.append((mask > 0).mean())
    assert len(sizes) >= 3, "mixed source resolutions"
    assert max(fractions) > 0.002 and min(fractions) < max(fractions)


def test_bird_sizes_span_tiny_to_large():
    rng = np.random.default_rng(0)
    lengths = [length for _ in range(200) for _, length in synthetic.bird_layout(480, 854, rng)]
    assert min(lengths) < 8 and max(lengths) > 854 / 12
    layouts = [synthetic.bird_layout(480, 854, np.random.default_rng(i)) for i in range(100)]
    assert any(not birds for birds in layouts), "some images have no bird"
    assert any(len(birds) >= 6 for birds in layouts), "some images have a flock"


def test_embedded_zip_is_the_generator_output():
    """birds_splitted.zip in the repo (under the repository's 20 MB per file) is what the generator writes with the
    default settings: the same files, and for every tenth sample (each is drawn from its own seed, so any can be
    redrawn alone) the same mask bit for bit and the same image but for rounding: OpenCV's resizing rounds
    differently on CPUs with and without AVX-512, by 1 in a few pixels, and JPEG turns such a pixel into a block of
    values that differ by up to 6 (measured: a zip made on an AVX2 host, redrawn on an AVX-512 one, 0.01 % of the
    values of one sample). Another drawing differs in nearly all of them (99.7 % for the next seed's)."""
    import io
    import zipfile

    from conftest import ROOT
    from PIL import Image

    assert (ROOT / "birds_splitted.zip").stat().st_size < 20e6
    embedded = zipfile.ZipFile(ROOT / "birds_splitted.zip")
    expected = ["birds_splitted/SYNTHETIC.txt"] + [f"birds_splitted/{split}/{kind}/{split}_{index:04d}.{suffix}"
                                                  for split, count in synthetic.DEFAULT_COUNTS.items()
                                                  for index in range(count)
                                                  for kind, suffix in (("images", "jpg"), ("mask", "png"))]
    assert embedded.namelist() == expected
    for split_index, (split, count) in enumerate(synthetic.DEFAULT_COUNTS.items()):
        for index in range(0, count, 10):
            rng = np.random.default_rng([synthetic.DEFAULT_SEED, split_index, index])
            image, mask = STYLES[EMBEDDED_STYLE](rng, None)
            stem = f"birds_splitted/{split}/%s/{split}_{index:04d}"
            assert embedded.read(stem % "mask" + ".png") == synthetic.encode(mask, "PNG"), stem
            stored = np.asarray(Image.open(io.BytesIO(embedded.read(stem % "images" + ".jpg"))), int)
            redrawn = synthetic.encode(image, "JPEG", quality=synthetic.JPEG_QUALITY)
            redrawn = np.asarray(Image.open(io.BytesIO(redrawn)), int)
            difference = np.abs(stored - redrawn)
            assert (difference > 0).mean() < 0.01 and difference.mean() < 0.01, stem
