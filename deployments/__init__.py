"""AIOS's deployments: their one definition, serving them (`aios up`), deploying them to a
work pool (`aios deploy`), prefect.yaml, and the event watcher that starts the reactor."""
