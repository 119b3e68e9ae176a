"""One controller per resource; each stays thin: parse, call a handler or a query, shape the response."""
