"""The stream-processing shell: settings, topics and their administration, the Faust app and
its tables' stores, changelogs and checkpoints, sign-in tokens, Prometheus."""
