"""Dead letters as operators handle them: filtered, inspected (secrets redacted), replayed or discarded."""
