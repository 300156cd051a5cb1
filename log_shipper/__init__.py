"""mlmon log shipper: every input record into Elasticsearch, none lost."""
