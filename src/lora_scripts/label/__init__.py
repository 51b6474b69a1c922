"""Labelling: classify (ViT), caption (BLIP/GIT) and tag (WD14 ONNX) images into metadata.csv or .txt."""
