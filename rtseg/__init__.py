"""rtseg: real-time semantic segmentation for street scenes.

    >>> import rtseg
    >>> rtseg.list_models()
    >>> model = rtseg.create_model("enet", num_classes=11)       # untrained network
    >>> seg = rtseg.load_model("enet-camvid")                     # shipped, trained on CamVid
    >>> mask = seg.predict("photo.png")                           # (H, W) class indices
"""

__version__ = "0.1.0"

from rtseg.inference import Segmenter, load_model  # noqa: E402
from rtseg.models import create_model, list_models  # noqa: E402

__all__ = ["Segmenter", "__version__", "create_model", "list_models", "load_model"]
