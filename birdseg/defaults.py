"""Defaults shared by the package and its command line, in one place and with no heavy imports (the CLI reads
them before it knows whether a command needs TensorFlow)."""

THRESHOLD = 0.5  # probability above which a pixel is predicted "bird"
MASK_THRESHOLD = 127  # soft 0..255 masks on disk: bird above this value
SPLIT_RATIOS = (0.8, 0.1, 0.1)  # train, val, test shares when a dataset is built
CUB_VAL_RATIO = 0.1  # share of CUB-200-2011's official training list held back for validation
# Test-time augmentation: the views whose predictions are averaged, each as the axes of a (batch, height, width,
# channels) array it flips: () the photo, (2,) mirrored left-right, (1,) upside down. "flips" uses the flips the
# training augmentation uses.
TTA_VIEWS = {"none": [()], "hflip": [(), (2,)], "flips": [(), (2,), (1,)]}
TTA = "flips"
PREDICT_BATCH_SIZE = 4  # images read and predicted at a time: memory does not grow with a folder's size
TILE_CHOICES = ("auto", "on", "off")  # large photos in tiles: when a side is at least twice the model's input, always, never
TILES = "auto"
EXPORT_FORMATS = ("savedmodel", "tflite", "onnx")
# Inference runtimes (birdseg.runtimes): "keras" needs nothing more; "auto" takes OpenVINO where it is installed
# (the fastest on the CPUs measured, benchmarks/README.md): in bfloat16 to predict, in float32 to evaluate; else Keras.
RUNTIMES = ("keras", "onnxruntime", "openvino", "openvino-bf16")
RUNTIME = "auto"
