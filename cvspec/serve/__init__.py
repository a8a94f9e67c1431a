"""Model serving: the HTTP server, dynamic batching, Prometheus metrics and drift gauges."""
