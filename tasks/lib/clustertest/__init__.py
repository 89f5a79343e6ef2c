"""``inv dev.cluster-test``: a real cluster from this repository, end to end.

- :mod:`.plan`: the pure parts (options, the VM network's addresses, the scratch
  repository's ``cluster.yaml``, command lines, readiness read from kubectl's JSON);
- :mod:`.gitserver`: the throw-away git smart-HTTP server the cluster pulls from
  (``git http-backend`` behind a small forking HTTP server, run as its own process);
- :mod:`.diagnostics`: what is collected into one folder when a step fails, and its summary;
- :mod:`.journey`: the steps, in order, through the runner, with teardown that always runs.
"""
