"""edgecompress: compress, export, package and measure trained models for edge and serverless."""

import os as _os

# transformers imports TensorFlow (~5 s, its own protobuf) when installed unless told not to;
# TensorFlow is only for the TFLite converter, which imports it itself.
_os.environ.setdefault("USE_TF", "0")
_os.environ.setdefault("USE_TORCH", "1")
# TensorFlow's C++ INFO lines (oneDNN, CUDA stubs) are noise on stderr for a CLI user.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
