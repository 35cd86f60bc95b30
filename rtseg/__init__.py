"""rtseg: real-time semantic segmentation for street scenes.

Every command of the ``rtseg`` CLI is a plain function here::

    >>> import rtseg
    >>> rtseg.list_models(), rtseg.shipped_models()
    >>> model = rtseg.create_model("enet", num_classes=11)       # untrained network
    >>> seg = rtseg.load_model("enet-camvid")                     # shipped, trained on CamVid
    >>> mask = seg.predict("photo.png")                           # (H, W) class indices
    >>> rtseg.evaluate("enet-camvid", "camvid", "val")["miou"]    # rtseg eval
    >>> rtseg.export("enet-camvid", "enet.onnx", size=(360, 480))  # rtseg export
    >>> rtseg.benchmark(weights="enet-camvid", backend="torch")    # rtseg bench
    >>> rtseg.prune("enet-camvid", 0.5, "enet_p50.pt")             # rtseg prune
    >>> rtseg.train("configs/enet_camvid.yaml", ["schedule.epochs=10"])  # rtseg train

Errors a user can cause (bad data, a bad option or config key, a runtime that is not installed)
raise :class:`RtsegError` subclasses with a one-line message, the one the CLI prints.
"""

from rtseg._version import __version__
from rtseg.benchmarks import benchmark
from rtseg.checkpoint import shipped_models
from rtseg.class_weights import compute_class_weights, dataset_info
from rtseg.compress import prune
from rtseg.datasets.resize import resize_dataset
from rtseg.deploy.export import export
from rtseg.engine.train import train
from rtseg.errors import RtsegError
from rtseg.evaluation import evaluate
from rtseg.inference import Segmenter, load_model, predict
from rtseg.models import create_model, list_models
from rtseg.video import process_video
from rtseg.weights import load_weights
from rtseg.zoo import model_table

__all__ = ["RtsegError", "Segmenter", "__version__", "benchmark", "compute_class_weights", "create_model", "dataset_info",
           "evaluate", "export", "list_models", "load_model", "load_weights", "model_table", "predict", "process_video", "prune",
           "resize_dataset", "shipped_models", "train"]
