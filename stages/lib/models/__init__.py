"""Model folders: saving a model whole (:mod:`.folder`) and the offline tiny test VLM (:mod:`.tiny_vlm`)."""

from stages.lib.models.folder import save_model_folder
from stages.lib.models.tiny_vlm import build_tiny_vlm, is_tiny_model_dir

__all__ = ["save_model_folder", "build_tiny_vlm", "is_tiny_model_dir"]
