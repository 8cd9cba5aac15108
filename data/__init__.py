"""Data layer: audio I/O, built-in corpora, webdataset shards, loaders, text and token shards."""
