"""Runtime adapters (one module per runtime), registered lazily in edgekit.runtime.RUNTIMES."""
