"""edgecompress: compress, export, package and measure trained models for edge and serverless."""

__version__ = "0.1.0"
