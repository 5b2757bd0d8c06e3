"""Exporters (one module per format), registered lazily in edgekit.exporter.EXPORTERS."""
