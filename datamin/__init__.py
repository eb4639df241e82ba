"""datamin: a privacy-minimising event pipeline.

The ground floor, what every stage shares: configuration (`config`), errors (`exceptions`), durable
files (`files`), the clock (`clock`), keys and keyed hashing (`keys`), topics (`topics`), graceful stop
(`signals`) and the one Kafka boundary (`kafka`). On top, `datamin.cli`: the command line and the demo,
the one room that may import every stage."""
