"""Deployment: BN folding, ONNX / TorchScript export with parity checks, int8, video."""
