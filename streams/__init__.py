"""The stream-processing shell: settings, topic registry, the Faust app, Prometheus, the CLI."""
