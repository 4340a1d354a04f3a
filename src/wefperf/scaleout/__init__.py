"""One run over several processes or machines: the segments' shares, the shards they store, the merge, the recount, live progress between them."""
