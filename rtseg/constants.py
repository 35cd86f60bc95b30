"""One source of truth for values every part of rtseg must agree on."""

from __future__ import annotations

#: Label value that the loss and every metric ignore. Datasets map their own void ids to it.
IGNORE_INDEX = 255

#: ImageNet normalisation used by every model (pretrained encoders expect it; from-scratch
#: models lose nothing by sharing it). Checkpoints store the values they were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Environment variable naming a folder that holds one sub-folder per dataset.
DATA_ENV = "RTSEG_DATA"
#: Environment variable overriding the cache folder (class weights, ...).
CACHE_ENV = "RTSEG_CACHE"

#: Image files rtseg reads from folders and globs.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
