"""Augmentation beyond the notebook's own pipeline: the validation resize that prediction and scripts share, and
copy-paste."""
import albumentations as A
import cv2
import numpy as np

from birdseg.recipe import check_image_size


def get_validation_augmentation(height, width):
    """Resize to (height, width) and pad: deterministic, the notebook's pipeline for validation and test images
    (tests/test_notebook.py checks the two agree). Masks are resized by nearest neighbour, so they stay binary."""
    check_image_size(height, width)
    return A.Compose([
        A.Resize(height, width, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST),
        # A no-op at sizes that pass check_image_size; kept so the pipeline never feeds odd shapes.
        A.PadIfNeeded(min_height=height, min_width=width, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
    ])


PASTE_SCALE = (0.5, 1.5)  # the donor's birds are resized by a factor drawn from here


def paste_birds(image, mask, donor_image, donor_mask, rng):
    """Copy-paste augmentation (Ghiasi et al., 2021): the donor's birds, cut out by their mask, resized and pasted
    at a random place; the mask becomes the union. New bird/background pairings from the same photos.

    Args:
        image, mask: the sample, uint8 (H, W, 3) and {0, 1} (H, W).
        donor_image, donor_mask: the sample whose birds are pasted, any size (resized to the sample's first).
        rng: numpy Generator; draws the scale and the place.
    """
    height, width = mask.shape
    if donor_mask.shape != mask.shape:
        donor_image = cv2.resize(donor_image, (width, height), interpolation=cv2.INTER_LINEAR)
        donor_mask = cv2.resize(donor_mask, (width, height), interpolation=cv2.INTER_NEAREST)
    rows, cols = np.nonzero(donor_mask)
    if rows.size == 0:
        return image, mask  # a donor without birds has nothing to give
    top, left = rows.min(), cols.min()
    cut_image = donor_image[top : rows.max() + 1, left : cols.max() + 1]
    cut_mask = donor_mask[top : rows.max() + 1, left : cols.max() + 1]
    # Resize, but never past the frame: a cut-out larger than the sample is shrunk to fit.
    scale = min(rng.uniform(*PASTE_SCALE), height / cut_mask.shape[0], width / cut_mask.shape[1])
    size = (max(1, round(cut_mask.shape[1] * scale)), max(1, round(cut_mask.shape[0] * scale)))
    cut_image = cv2.resize(cut_image, size, interpolation=cv2.INTER_LINEAR)
    cut_mask = cv2.resize(cut_mask, size, interpolation=cv2.INTER_NEAREST)
    y = int(rng.integers(height - size[1] + 1))
    x = int(rng.integers(width - size[0] + 1))
    # Soft edges: a hard cut-out's edge would be a cue for "bird" that real photos do not have.
    alpha = cv2.GaussianBlur(cut_mask.astype(np.float32), (3, 3), 0)[..., None]
    region = (slice(y, y + size[1]), slice(x, x + size[0]))
    image, mask = image.copy(), mask.copy()
    image[region] = np.round(image[region] * (1 - alpha) + cut_image * alpha).astype(image.dtype)
    mask[region] |= cut_mask.astype(mask.dtype)
    return image, mask
